/**
 * The scheduler's busiest subjects — every job passes through `enqueue`, `started` and
 * `complete`, every worker sends `heartbeat`s, and `register` belongs with them — served
 * on the bus connection directly rather than through Nest's NATS transport. They speak
 * the same envelope (`answer` in contracts), validate with the same schemas and decide
 * with the same core; what goes is Nest's per-message routing, rxjs and its second
 * connection (bench/scheduler-throughput.ts --profile: about a tenth of the
 * scheduler's CPU per job). Operators' and clients' subjects stay in the controller.
 *
 * The subscriptions open only once the stored state is loaded: until then a worker's
 * request finds no responder and is retried, never answered from an empty scheduler.
 */
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  answer,
  Complete,
  Heartbeat,
  identityOf,
  JobSubmission,
  Register,
  RejectedError,
  serve,
  Started,
  subjects,
  type HeartbeatReply,
  type Registered,
  type Reply,
  type Submitted,
} from '@cairn/contracts';
import { BUS } from '@cairn/service-kit';
import { SchedulerError } from './core/scheduler-core.js';
import { SchedulerService } from './scheduler.service.js';

/** Scheduler decisions that refuse a request become rejections with the same code. */
export async function decide<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof SchedulerError) throw new RejectedError(e.code, e.message);
    throw e;
  }
}

@Injectable()
export class DirectHandlers implements OnModuleInit, OnApplicationShutdown {
  private readonly log = new Logger('DirectHandlers');
  private readonly subscriptions: Subscription[] = [];
  private closed = false;

  constructor(
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(SchedulerService) private readonly scheduler: SchedulerService,
  ) {}

  onModuleInit(): void {
    // Not awaited: Nest may run this hook before the service's own, which loads the state.
    void this.scheduler.loaded.then(() => this.open());
  }

  onApplicationShutdown(): void {
    this.closed = true;
    for (const sub of this.subscriptions) sub.unsubscribe();
  }

  private open(): void {
    if (this.closed) return;
    this.on(subjects.enqueue, (data) => this.enqueue(data));
    this.on(subjects.toSchedulerPattern('register'), (data, speaker) => this.register(data, speaker));
    this.on(subjects.toSchedulerPattern('heartbeat'), (data, speaker) => this.heartbeat(data, speaker));
    this.on(subjects.toSchedulerPattern('started'), (data, speaker) => this.started(data, speaker));
    this.on(subjects.toSchedulerPattern('complete'), (data, speaker) => this.complete(data, speaker));
  }

  /** `speaker`: the client or worker the subject names (the token NATS permissions pin). */
  private on(subject: string, handle: (data: unknown, speaker: string) => Promise<Reply<unknown>>): void {
    const sub = this.bus.subscribe(subject, {
      callback: (err, msg: Msg) => {
        if (err) {
          this.log.warn(`subscription ${subject} ended: ${err.message}`);
          return;
        }
        answer(msg, (data) => handle(data, identityOf(msg.subject) ?? '')).catch((e: unknown) => this.log.error(`${msg.subject}: ${String(e)}`));
      },
    });
    this.subscriptions.push(sub);
  }

  private get core() {
    return this.scheduler.core;
  }

  private enqueue(data: unknown) {
    return serve(JobSubmission, data, 'enqueue', (submission) =>
      decide(async (): Promise<Submitted> => {
        const bad = this.scheduler.openSecretsCheck(submission.secrets);
        if (bad) throw new RejectedError('forbidden', bad);
        const { job, effects, repeated } = this.core.submit(submission, Date.now());
        this.scheduler.run(effects);
        await this.scheduler.stored(job);
        return { job: job.id, cacheHint: job.cacheHint, steps: job.steps, ...(repeated ? { repeated } : {}) };
      }),
    );
  }

  private register(data: unknown, speaker: string) {
    return serve(Register, data, 'register', (r): Registered & { cancel: string[] } => {
      sameWorker(speaker, r.worker);
      const { cancel, effects } = this.core.register(
        { id: r.worker, pool: r.pool, platform: r.platform, capacity: r.capacity, publicKey: r.publicKey, freeBytes: r.store.freeBytes, hints: r.hints, running: r.running },
        Date.now(),
      );
      this.scheduler.run(effects);
      return { heartbeatMs: this.core.config.heartbeatMs, leaseTtlMs: this.core.config.leaseTtlMs, cancel };
    });
  }

  private heartbeat(data: unknown, speaker: string) {
    return serve(Heartbeat, data, 'heartbeat', (b): HeartbeatReply => {
      sameWorker(speaker, b.worker);
      const { known, cancel, effects } = this.core.heartbeat(b.worker, b, Date.now());
      this.scheduler.run(effects);
      return { known, cancel };
    });
  }

  private started(data: unknown, speaker: string) {
    return serve(Started, data, 'started', (s) => {
      sameWorker(speaker, s.worker);
      this.scheduler.run(this.core.started(s.worker, s.job, s.lease, Date.now()));
      return { ok: true };
    });
  }

  private complete(data: unknown, speaker: string) {
    return serve(Complete, data, 'complete', async (c) => {
      sameWorker(speaker, c.worker);
      const { recorded, reason, effects } = this.core.complete(c.worker, c.job, c.lease, c.outcome, Date.now());
      this.scheduler.run(effects);
      // The worker may forget the job once this reply arrives: the outcome must be stored first.
      const job = this.core.jobs.get(c.job);
      if (recorded && job) await this.scheduler.stored(job);
      return { recorded, ...(reason === undefined ? {} : { reason }) };
    });
  }
}

function sameWorker(speaker: string, worker: string): void {
  if (speaker !== worker) throw new RejectedError('forbidden', `worker ${speaker} cannot speak for worker ${worker}`);
}
