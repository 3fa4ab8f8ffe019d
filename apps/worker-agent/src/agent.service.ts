import { createRequire } from 'node:module';
import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Builder } from '@cairn/builder';
import {
  Assignment,
  AssignmentBatch,
  backoffDelay,
  call,
  CancelOrder,
  generateKeyPair,
  open,
  RejectedError,
  subjects,
  withTrace,
  type Accepted,
  type BatchAccepted,
  type Heartbeat,
  type HeartbeatReply,
  type KeyPair,
  type Register,
  type Registered,
} from '@cairn/contracts';
import { BUS, Handles, Ops } from '@cairn/service-kit';
import type { AgentConfig } from './config.js';
import { DiskGuard } from './disk-guard.js';
import { HintSet } from './hint-set.js';
import { JobRunner, type JobEnvironment } from './job-runner.js';
import { AgentMetrics } from './metrics.js';
import { AGENT_CONFIG, BUILDER } from './tokens.js';

/** This worker-agent's version (its package's; src/ and dist/ are both one level down), for the dashboard's worker page. */
const AGENT_VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

/**
 * The worker's side of the bus: it registers with its pool (again whenever the
 * scheduler has forgotten it), heartbeats its leases, free space and new cache hints,
 * takes assignments up to its capacity on `agent.<id>.assign` and cancels on
 * `agent.<id>.cancel` (served on the bus directly, until the service closes after its
 * drain), and on shutdown stops taking jobs and finishes the running ones.
 * The scheduler may start after the worker or restart at any time: every call is
 * retried until it is answered.
 */
@Injectable()
export class AgentService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('worker-agent');
  private readonly metrics: AgentMetrics;
  /** A fresh key pair per process: secrets are sealed to this worker, this run. */
  private readonly keys: KeyPair = generateKeyPair();
  private readonly jobs = new Map<string, JobRunner>();
  private readonly hints = new HintSet();
  private readonly disk: DiskGuard;
  private readonly teardown = new AbortController();
  private registered = false;
  private heartbeatMs: number;
  private draining: Promise<void> | undefined;
  private releasing = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(BUILDER) private readonly builder: Builder,
    @Inject(Ops) ops: Ops,
  ) {
    this.metrics = new AgentMetrics(ops.metrics);
    this.disk = new DiskGuard(builder, config.pruneBelowBytes, this.metrics, (m) => this.logger.log(m));
    this.heartbeatMs = config.heartbeatMs;
    ops.addCheck('store', () => this.disk.refusal);
    ops.addCheck('scheduler', () => (this.registered ? undefined : `not registered with pool ${config.pool} yet`));
  }

  get workerId(): string {
    return this.config.worker;
  }

  get publicKey(): string {
    return this.keys.publicKey;
  }

  get runningJobs(): readonly string[] {
    return [...this.jobs.keys()];
  }

  get isRegistered(): boolean {
    return this.registered;
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.disk.check();
    this.loop = this.lifecycle();
    this.logger.log(
      `worker ${this.config.worker} in pool ${this.config.pool} (${this.config.platform}), capacity ${this.config.capacity}, store ${this.builder.store.kind}:${this.builder.store.root}`,
    );
  }

  /** SIGTERM (via Nest's shutdown hooks or main.ts): finish what runs, then go. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.drain();
  }

  /** Stops taking jobs, lets the running ones finish and report, then leaves the bus. */
  drain(): Promise<void> {
    this.draining ??= (async () => {
      this.metrics.refusing.set(1);
      this.logger.log(`draining: ${this.jobs.size} job(s) still running`);
      // The scheduler learns at once that no more jobs should come here.
      if (this.registered) await this.heartbeat().catch(() => undefined);
      await Promise.all([...this.jobs.values()].map((j) => j.done.catch(() => undefined)));
      // Runs handed back are requeued when the scheduler hears they are gone.
      if (this.releasing && this.registered) await this.heartbeat().catch(() => undefined);
      await this.stop();
    })();
    return this.draining;
  }

  /**
   * Stops the running builds without outcomes and hands them back to the scheduler,
   * which queues them again at once (the heartbeat says the worker is draining), then
   * leaves like a drain: for a worker that must stop before its builds could end.
   */
  release(reason: string): Promise<void> {
    this.releasing = true;
    for (const job of this.jobs.values()) job.release(reason);
    return this.drain();
  }

  /** Tears down without waiting for jobs (tests, a second signal): running jobs are cancelled. */
  async abort(): Promise<void> {
    this.draining ??= Promise.resolve();
    for (const job of this.jobs.values()) job.cancel('the worker is shutting down');
    this.teardown.abort();
    await Promise.all([...this.jobs.values()].map((j) => j.done.catch(() => undefined)));
    await this.stop();
  }

  private async stop(): Promise<void> {
    this.teardown.abort();
    this.wake?.();
    await this.loop;
  }

  /** Runs until teardown: register (retrying), then heartbeat; register again when forgotten. */
  private async lifecycle(): Promise<void> {
    let failures = 0;
    while (!this.teardown.signal.aborted) {
      if (!this.registered) {
        const ok = await this.register();
        failures = ok ? 0 : failures + 1;
        if (!ok) await this.sleep(backoffDelay(failures, { firstMs: 250, maxMs: 5000 }));
        continue;
      }
      await this.sleep(this.heartbeatMs);
      if (this.teardown.signal.aborted) break;
      await this.heartbeat().catch((e: unknown) => this.logger.warn(`heartbeat: ${e instanceof Error ? e.message : String(e)}`));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private leases() {
    return [...this.jobs.values()].map((j) => ({ job: j.assignment.job, lease: j.lease }));
  }

  private async register(): Promise<boolean> {
    await this.disk.check().catch((e: unknown) => this.logger.warn(`disk check: ${String(e)}`));
    const message: Register = {
      worker: this.config.worker,
      pool: this.config.pool,
      platform: this.config.platform,
      capacity: this.config.capacity,
      store: { kind: this.builder.store.kind, freeBytes: this.disk.freeBytes, totalBytes: this.disk.totalBytes },
      publicKey: this.keys.publicKey,
      hints: this.hints.all(),
      running: this.leases(),
      version: AGENT_VERSION,
      ...(this.disk.lastPruneAt !== undefined ? { lastPruneAt: this.disk.lastPruneAt } : {}),
    };
    // Every hint goes in a registration, the fresh ones included.
    const fresh = this.hints.fresh().length;
    const reply = await call<Registered>(this.bus, subjects.toScheduler(this.config.worker, 'register'), message, { timeoutMs: this.config.callTimeoutMs });
    if (!reply.ok) {
      if (reply.error.code !== 'unavailable') this.logger.warn(`registration refused: ${reply.error.code}: ${reply.error.message}`);
      return false;
    }
    this.registered = true;
    this.hints.acknowledge(fresh);
    if (reply.value.heartbeatMs > 0) this.heartbeatMs = reply.value.heartbeatMs;
    this.logger.log(`registered with pool ${this.config.pool}; heartbeat every ${this.heartbeatMs} ms`);
    return true;
  }

  private async heartbeat(): Promise<void> {
    await this.disk.check();
    const fresh = this.hints.fresh();
    const message: Heartbeat = {
      worker: this.config.worker,
      running: this.leases(),
      freeBytes: this.disk.freeBytes,
      refusing: this.refusal() !== undefined,
      hints: fresh,
      ...(this.draining ? { draining: true } : {}),
      ...(this.disk.lastPruneAt !== undefined ? { lastPruneAt: this.disk.lastPruneAt } : {}),
    };
    this.metrics.refusing.set(message.refusing ? 1 : 0);
    const reply = await call<HeartbeatReply>(this.bus, subjects.toScheduler(this.config.worker, 'heartbeat'), message, {
      timeoutMs: this.config.callTimeoutMs,
    });
    if (!reply.ok) {
      // Unanswered: the hints go again next time.
      if (reply.error.code !== 'unavailable') this.logger.warn(`heartbeat refused: ${reply.error.code}: ${reply.error.message}`);
      return;
    }
    this.hints.acknowledge(fresh.length);
    if (!reply.value.known) {
      this.logger.log('the scheduler does not know this worker (it restarted or forgot it): registering again');
      this.registered = false;
      this.wake?.();
    }
    for (const job of reply.value.cancel) this.jobs.get(job)?.cancel('cancelled by the scheduler');
  }

  /** Why no new job can start here now, or undefined. */
  private refusal(): string | undefined {
    if (this.draining) return `worker ${this.config.worker} is draining (shutting down)`;
    return this.disk.refusal;
  }

  /**
   * Takes or refuses an assignment. A job is run under its submission's trace, which its
   * assignment carries (an assign-batch holds several submissions' jobs, and one message
   * has one header): the lines logged about it and the calls made for it (started,
   * complete) carry that trace, not the message's.
   */
  @Handles((agent: AgentService) => subjects.toWorker(agent.workerId, 'assign'), Assignment, 'assign', { direct: true })
  private accept(a: Assignment): Accepted {
    return a.trace === undefined ? this.take(a) : withTrace(a.trace, () => this.take(a));
  }

  private take(a: Assignment): Accepted {
    const running = this.jobs.get(a.job);
    // A repeated assignment (the scheduler retrying after a lost reply) is the same job.
    if (running) return running.lease === a.lease ? { accepted: true } : { accepted: false, reason: `job ${a.job} already runs here under another lease` };
    const refused = (reason: string, label: string): Accepted => {
      this.metrics.rejectedAssignments.inc({ reason: label });
      return { accepted: false, reason };
    };
    const refusal = this.refusal();
    if (refusal) return refused(refusal, this.draining ? 'draining' : 'disk');
    const building = [...this.jobs.values()].filter((j) => j.building).length;
    if (building >= this.config.capacity)
      return refused(`worker ${this.config.worker} is at capacity (${building} of ${this.config.capacity} builds running)`, 'capacity');
    const secrets = new Map<string, Uint8Array>();
    for (const s of a.secrets) {
      try {
        secrets.set(s.id, open(this.keys, s.sealed));
      } catch {
        return refused(
          `secret "${s.id}" of job ${a.job} cannot be opened with worker ${this.config.worker}'s key (sealed for another key or altered)`,
          'secret',
        );
      }
    }
    const job = new JobRunner(a, secrets, this.jobEnvironment());
    this.jobs.set(a.job, job);
    this.metrics.runningJobs.set(this.jobs.size);
    // The service's fields add the worker and pool.
    const fields = { job: a.job, client: a.client };
    this.logger.log(`job ${a.job} (${a.name}) started, run ${a.attempt}`, fields);
    void job.done
      .then(
        () => this.logger.log(`job ${a.job} (${a.name}) ended: ${job.endedAs ?? 'no outcome'}`, fields),
        (e: unknown) => this.logger.error(`job ${a.job}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, fields),
      )
      .finally(() => {
        this.jobs.delete(a.job);
        this.metrics.runningJobs.set(this.jobs.size);
        if (job.hint) this.hints.add(job.hint);
        // A build used space: look again before the next job is offered.
        void this.disk.check().catch(() => undefined);
      });
    return { accepted: true };
  }

  /** Several assignments at once (the scheduler filling free slots): each answered as if it came alone. */
  @Handles((agent: AgentService) => subjects.toWorker(agent.workerId, 'assign-batch'), AssignmentBatch, 'assign-batch', { direct: true })
  private acceptAll(batch: AssignmentBatch): BatchAccepted {
    return { answers: batch.assignments.map((a) => this.accept(a)) };
  }

  @Handles((agent: AgentService) => subjects.toWorker(agent.workerId, 'cancel'), CancelOrder, 'cancel', { direct: true })
  private cancel(order: CancelOrder): { cancelled: boolean } {
    const job = this.jobs.get(order.job);
    if (!job || job.lease !== order.lease)
      throw new RejectedError('not-found', `job ${order.job} with lease ${order.lease} is not running on worker ${this.config.worker}`);
    job.cancel(order.reason);
    return { cancelled: true };
  }

  private jobEnvironment(): JobEnvironment {
    return {
      nc: this.bus,
      builder: this.builder,
      worker: this.config.worker,
      platform: this.config.platform,
      metrics: this.metrics,
      callTimeoutMs: this.config.callTimeoutMs,
      scratchDir: this.config.scratchDir,
      cacheDomains: this.config.cacheDomains,
      logLimits: { memoryBytes: this.config.logMemoryBytes, spoolBytes: this.config.logSpoolBytes },
      log: (m, fields) => (fields === undefined ? this.logger.warn(m) : this.logger.warn(m, fields)),
      teardown: this.teardown.signal,
    };
  }
}
