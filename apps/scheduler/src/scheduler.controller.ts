/**
 * The scheduler's NATS API. Each handler is declared with its subject and schema
 * (@Handles, service-kit), checks who speaks — the client or worker its subject names,
 * the token NATS permissions pin — and calls the service's operation of the same name.
 * The busiest subjects (every job passes through `enqueue`, `started` and `complete`,
 * every worker sends `heartbeat`s, and `register` belongs with them) are served on the
 * bus connection directly; operators' and clients' subjects go through Nest.
 */
import { Controller, Inject } from '@nestjs/common';
import {
  ClientRate,
  Complete,
  Empty,
  Heartbeat,
  JobRef,
  JobSubmission,
  LogsRequest,
  PoolRef,
  Register,
  RejectedError,
  Started,
  subjects,
  WorkerRef,
} from '@cairn/contracts';
import { Handles, type MessageOf } from '@cairn/service-kit';
import { SchedulerService } from './scheduler.service.js';

const direct = { direct: true };

@Controller()
export class SchedulerController {
  constructor(@Inject(SchedulerService) private readonly scheduler: SchedulerService) {}

  @Handles(subjects.schedulerKey, Empty, 'scheduler key')
  key() {
    return { publicKey: this.scheduler.publicKey() };
  }

  // ---- the spec-compiler and workers ---------------------------------------------------

  @Handles(subjects.enqueue, JobSubmission, 'enqueue', direct)
  enqueue(submission: JobSubmission) {
    return this.scheduler.submit(submission);
  }

  @Handles(subjects.toSchedulerPattern('register'), Register, 'register', direct)
  register(r: Register, speaker: string) {
    sameWorker(speaker, r.worker);
    return this.scheduler.register(r);
  }

  @Handles(subjects.toSchedulerPattern('heartbeat'), Heartbeat, 'heartbeat', direct)
  heartbeat(b: Heartbeat, speaker: string) {
    sameWorker(speaker, b.worker);
    return this.scheduler.heartbeat(b);
  }

  @Handles(subjects.toSchedulerPattern('started'), Started, 'started', direct)
  started(s: MessageOf<typeof Started>, speaker: string) {
    sameWorker(speaker, s.worker);
    this.scheduler.started(s.worker, s.job, s.lease);
    return { ok: true };
  }

  @Handles(subjects.toSchedulerPattern('complete'), Complete, 'complete', direct)
  complete(c: Complete, speaker: string) {
    sameWorker(speaker, c.worker);
    return this.scheduler.complete(c);
  }

  // ---- clients -------------------------------------------------------------------------

  @Handles(subjects.clientPattern('status'), JobRef, 'status')
  status({ job }: MessageOf<typeof JobRef>, client: string) {
    return this.scheduler.status(client, job);
  }

  @Handles(subjects.clientPattern('cancel'), JobRef, 'cancel')
  cancel({ job }: MessageOf<typeof JobRef>, client: string) {
    return this.scheduler.cancel(client, job);
  }

  @Handles(subjects.clientPattern('logs'), LogsRequest, 'logs')
  readLogs({ job, cursor }: MessageOf<typeof LogsRequest>, client: string) {
    return this.scheduler.logs(client, job, cursor);
  }

  // ---- operators -----------------------------------------------------------------------

  @Handles(subjects.admin('pools'), Empty, 'admin pools')
  pools() {
    return this.scheduler.pools();
  }

  @Handles(subjects.admin('jobs'), Empty, 'admin jobs')
  jobs() {
    return this.scheduler.activeJobs();
  }

  @Handles(subjects.admin('workers'), Empty, 'admin workers')
  workers() {
    return this.scheduler.workers();
  }

  @Handles(subjects.admin('queues'), Empty, 'admin queues')
  queues() {
    return this.scheduler.queues();
  }

  @Handles(subjects.admin('clients'), Empty, 'admin clients')
  clients() {
    return this.scheduler.clients();
  }

  @Handles(subjects.admin('worker-pause'), WorkerRef, 'admin worker-pause')
  pauseWorker({ worker }: MessageOf<typeof WorkerRef>) {
    this.scheduler.pauseWorker(worker);
    return { worker, done: 'worker-pause' };
  }

  @Handles(subjects.admin('worker-unpause'), WorkerRef, 'admin worker-unpause')
  unpauseWorker({ worker }: MessageOf<typeof WorkerRef>) {
    this.scheduler.unpauseWorker(worker);
    return { worker, done: 'worker-unpause' };
  }

  @Handles(subjects.admin('worker-drain'), WorkerRef, 'admin worker-drain')
  drainWorker({ worker }: MessageOf<typeof WorkerRef>) {
    this.scheduler.drainWorker(worker);
    return { worker, done: 'worker-drain' };
  }

  @Handles(subjects.admin('worker-forget'), WorkerRef, 'admin worker-forget')
  forgetWorker({ worker }: MessageOf<typeof WorkerRef>) {
    this.scheduler.forgetWorker(worker);
    return { worker, done: 'worker-forget' };
  }

  @Handles(subjects.admin('pool-pause'), PoolRef, 'admin pool-pause')
  pausePool({ pool }: MessageOf<typeof PoolRef>) {
    this.scheduler.setPoolPaused(pool, true);
    return { pool, paused: true };
  }

  @Handles(subjects.admin('pool-unpause'), PoolRef, 'admin pool-unpause')
  unpausePool({ pool }: MessageOf<typeof PoolRef>) {
    this.scheduler.setPoolPaused(pool, false);
    return { pool, paused: false };
  }

  @Handles(subjects.admin('pool-drain'), PoolRef, 'admin pool-drain')
  drainPool({ pool }: MessageOf<typeof PoolRef>) {
    this.scheduler.drainPool(pool);
    return { pool, done: 'pool-drain' };
  }

  @Handles(subjects.admin('job-cancel'), JobRef, 'admin job-cancel')
  cancelJob({ job }: MessageOf<typeof JobRef>) {
    return this.scheduler.cancelAny(job);
  }

  @Handles(subjects.admin('client-rate'), ClientRate, 'admin client-rate')
  clientRate({ client, rate }: MessageOf<typeof ClientRate>) {
    this.scheduler.setRate(client, rate);
    return { client, rate };
  }
}

function sameWorker(speaker: string, worker: string): void {
  if (speaker !== worker) throw new RejectedError('forbidden', `worker ${speaker} cannot speak for worker ${worker}`);
}
