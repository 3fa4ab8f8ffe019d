/**
 * The scheduler's NATS API for clients and operators, through Nest. Each handler
 * validates its message (contracts), takes the client identity from the subject — the
 * token NATS permissions pin — and hands the decision to the core. The per-job and
 * per-worker subjects are served in direct-handlers.ts.
 */
import { Controller, Inject } from '@nestjs/common';
import { Ctx, MessagePattern, NatsContext, Payload } from '@nestjs/microservices';
import {
  ClientRate,
  Empty,
  identityOf,
  JobRef,
  LogsRequest,
  PoolRef,
  RejectedError,
  serve,
  subjects,
  WorkerRef,
  type JobStatus,
  type WorkerInfo,
} from '@cairn/contracts';
import { decide } from './direct-handlers.js';
import type { JobRecord } from './core/records.js';
import { LogReader } from './log-reader.js';
import { SchedulerService } from './scheduler.service.js';

/** The client or worker the request speaks for (see identityOf in contracts). */
const speakerOf = (ctx: NatsContext) => identityOf(ctx.getSubject()) ?? '';

function statusOf(job: JobRecord): JobStatus {
  return {
    job: job.id,
    name: job.name,
    client: job.client,
    pool: job.pool,
    state: job.state,
    urgent: job.urgent,
    cacheHint: job.cacheHint,
    attempts: job.attempts,
    submittedAt: job.submittedAt,
    ...(job.worker === undefined ? {} : { worker: job.worker }),
    ...(job.assignedAt === undefined ? {} : { assignedAt: job.assignedAt }),
    ...(job.startedAt === undefined ? {} : { startedAt: job.startedAt }),
    ...(job.finishedAt === undefined ? {} : { finishedAt: job.finishedAt }),
    ...(job.failure === undefined ? {} : { failure: job.failure }),
    ...(job.outcome?.snapshotId === undefined ? {} : { snapshotId: job.outcome.snapshotId }),
    ...(job.requeues === undefined ? {} : { requeues: job.requeues }),
  };
}

@Controller()
export class SchedulerController {
  constructor(
    @Inject(SchedulerService) private readonly scheduler: SchedulerService,
    @Inject(LogReader) private readonly logs: LogReader,
  ) {}

  /**
   * Nest starts these handlers before the service has loaded its stored state; until then
   * every request is told "unavailable" (callers retry) instead of being answered from an
   * empty scheduler.
   */
  private get core() {
    if (!this.scheduler.ready) throw new RejectedError('unavailable', 'the scheduler is still loading its state');
    return this.scheduler.core;
  }

  @MessagePattern(subjects.schedulerKey)
  key() {
    return serve(Empty, {}, 'scheduler key', () => ({ publicKey: this.scheduler.publicKey }));
  }

  // ---- clients -------------------------------------------------------------------------

  @MessagePattern(subjects.clientPattern('status'))
  status(@Payload() data: unknown, @Ctx() ctx: NatsContext) {
    return serve(JobRef, data, 'status', ({ job }) => decide(() => statusOf(this.core.jobOf(speakerOf(ctx), job))));
  }

  @MessagePattern(subjects.clientPattern('cancel'))
  cancel(@Payload() data: unknown, @Ctx() ctx: NatsContext) {
    return serve(JobRef, data, 'cancel', ({ job }) =>
      decide(() => {
        this.scheduler.run(this.core.cancel(speakerOf(ctx), job, Date.now()));
        return statusOf(this.core.jobs.get(job)!);
      }),
    );
  }

  @MessagePattern(subjects.clientPattern('logs'))
  readLogs(@Payload() data: unknown, @Ctx() ctx: NatsContext) {
    return serve(LogsRequest, data, 'logs', ({ job, cursor }) =>
      decide(async () => {
        const record = this.core.jobOf(speakerOf(ctx), job);
        return { ...(await this.logs.page(record.client, record.id, cursor)), state: record.state, requeues: record.requeues ?? [] };
      }),
    );
  }

  // ---- operators -----------------------------------------------------------------------

  @MessagePattern(subjects.admin('pools'))
  pools(@Payload() data: unknown) {
    return serve(Empty, data, 'admin pools', () =>
      this.core.settings.pools.map((pool) => {
        const workers = [...this.core.workers.values()].filter((w) => w.pool === pool);
        return {
          pool,
          paused: this.core.settings.pausedPools.includes(pool),
          queued: this.core.queueSizes().get(pool)?.length ?? 0,
          running: workers.reduce((n, w) => n + w.running.length, 0),
          workers: workers.filter((w) => w.connected).length,
        };
      }),
    );
  }

  @MessagePattern(subjects.admin('workers'))
  workers(@Payload() data: unknown) {
    return serve(Empty, data, 'admin workers', (): WorkerInfo[] => {
      const now = Date.now();
      return [...this.core.workers.values()].map((w) => ({
        worker: w.id,
        pool: w.pool,
        platform: w.platform,
        capacity: w.capacity,
        running: [...w.running],
        paused: w.paused,
        draining: w.draining,
        connected: w.connected,
        refusing: w.refusing,
        freeBytes: w.freeBytes,
        hints: this.core.affinity.hintsOf(w.id, now).length,
        lastSeen: w.lastSeen,
      }));
    });
  }

  @MessagePattern(subjects.admin('queues'))
  queues(@Payload() data: unknown) {
    return serve(Empty, data, 'admin queues', () =>
      [...this.core.queueSizes()].flatMap(([pool, queue]) => [...queue.byClient()].map(([client, n]) => ({ pool, client, urgent: n.urgent, normal: n.normal }))),
    );
  }

  @MessagePattern(subjects.admin('clients'))
  clients(@Payload() data: unknown) {
    return serve(Empty, data, 'admin clients', () => this.core.clients());
  }

  private workerOp(verb: string, data: unknown, op: (worker: string) => void) {
    return serve(WorkerRef, data, `admin ${verb}`, ({ worker }) =>
      decide(() => {
        op(worker);
        return { worker, done: verb };
      }),
    );
  }

  @MessagePattern(subjects.admin('worker-pause'))
  pauseWorker(@Payload() data: unknown) {
    return this.workerOp('worker-pause', data, (w) => this.scheduler.run(this.core.setWorkerFlag(w, 'paused', true)));
  }

  @MessagePattern(subjects.admin('worker-unpause'))
  unpauseWorker(@Payload() data: unknown) {
    return this.workerOp('worker-unpause', data, (w) => {
      this.scheduler.run(this.core.setWorkerFlag(w, 'paused', false));
      this.scheduler.run(this.core.setWorkerFlag(w, 'draining', false));
    });
  }

  @MessagePattern(subjects.admin('worker-drain'))
  drainWorker(@Payload() data: unknown) {
    return this.workerOp('worker-drain', data, (w) => this.scheduler.run(this.core.setWorkerFlag(w, 'draining', true)));
  }

  @MessagePattern(subjects.admin('worker-forget'))
  forgetWorker(@Payload() data: unknown) {
    return this.workerOp('worker-forget', data, (w) => this.scheduler.run(this.core.forgetWorker(w, Date.now())));
  }

  @MessagePattern(subjects.admin('pool-pause'))
  pausePool(@Payload() data: unknown) {
    return serve(PoolRef, data, 'admin pool-pause', ({ pool }) => decide(() => (this.scheduler.run(this.core.setPoolPaused(pool, true)), { pool, paused: true })));
  }

  @MessagePattern(subjects.admin('pool-unpause'))
  unpausePool(@Payload() data: unknown) {
    return serve(PoolRef, data, 'admin pool-unpause', ({ pool }) => decide(() => (this.scheduler.run(this.core.setPoolPaused(pool, false)), { pool, paused: false })));
  }

  @MessagePattern(subjects.admin('client-rate'))
  clientRate(@Payload() data: unknown) {
    return serve(ClientRate, data, 'admin client-rate', ({ client, rate }) => (this.scheduler.run(this.core.setRate(client, rate)), { client, rate }));
  }
}

