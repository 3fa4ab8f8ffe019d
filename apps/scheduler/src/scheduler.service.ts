/**
 * The scheduler's shell: holds the SchedulerCore, loads it from the KV buckets at start,
 * and carries out the effects its decisions return — durable writes first, then the
 * messages that depend on them (an assignment is sent only once the job's new state is
 * stored, so a scheduler restart can never hand the same run out twice).
 *
 * Its public methods are the scheduler's protocol, one per operation: the handlers
 * (scheduler.controller.ts) validate a message, check who speaks,
 * call one of them and send back what it returns. Only this class talks to the core.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  attempts,
  buckets,
  call,
  currentTrace,
  durablePublish,
  exportPrivateKey,
  generateKeyPair,
  importKeyPair,
  open,
  openBucket,
  RejectedError,
  seal,
  subjects,
  TERMINAL,
  throughBusRestarts,
  withTrace,
  type ActiveJob,
  type Accepted,
  type Assignment,
  type BatchAccepted,
  type Complete,
  type Heartbeat,
  type HeartbeatReply,
  type JobStatus,
  type JobSubmission,
  type KeyPair,
  type LogsPage,
  type Register,
  type Registered,
  type RunHistory,
  type SealedSecret,
  type Submitted,
  type WorkerInfo,
} from '@cairn/contracts';
import { BUS, Ops } from '@cairn/service-kit';
import { DEFAULT_CONFIG, SchedulerCore, SchedulerError, type Effect, type SchedulerConfig } from './core/scheduler-core.js';
import type { JobRecord, SchedulerSettings, WorkerRecord } from './core/records.js';
import { LogReader } from './log-reader.js';
import { assignment, buildResult, jobEvent, jobStatus, runHistory, submitted, workerInfo } from './projections.js';
import { SchedulerMetrics } from './scheduler-metrics.js';
import { bucketWriter, WriteBehind } from './write-behind.js';
import { readBucket } from './bucket-reader.js';
import { LEADERSHIP, type Leadership } from './leadership.js';

export const SCHEDULER_CONFIG = Symbol('SCHEDULER_CONFIG');

export interface SchedulerServiceConfig extends SchedulerConfig {
  /** PEM file of the scheduler's X25519 key; made (mode 0600) when missing. */
  readonly keyFile: string;
  /** Finished jobs are kept for status queries this long. */
  readonly keepFinishedMs: number;
}

export function schedulerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): SchedulerServiceConfig {
  const ms = (name: string, fallback: number) => (env[name] === undefined ? fallback : Number(env[name]));
  return {
    leaseTtlMs: ms('CAIRN_LEASE_TTL_MS', DEFAULT_CONFIG.leaseTtlMs),
    heartbeatMs: ms('CAIRN_HEARTBEAT_MS', DEFAULT_CONFIG.heartbeatMs),
    affinityWaitMs: ms('CAIRN_AFFINITY_WAIT_MS', DEFAULT_CONFIG.affinityWaitMs),
    hintTtlMs: ms('CAIRN_HINT_TTL_MS', DEFAULT_CONFIG.hintTtlMs),
    maxAttempts: ms('CAIRN_MAX_ATTEMPTS', DEFAULT_CONFIG.maxAttempts),
    timeoutGraceMs: ms('CAIRN_TIMEOUT_GRACE_MS', DEFAULT_CONFIG.timeoutGraceMs),
    keyFile: env.CAIRN_SCHEDULER_KEY ?? '/var/lib/cairn/scheduler-key.pem',
    keepFinishedMs: ms('CAIRN_KEEP_FINISHED_MS', 24 * 3600_000),
  };
}

const SETTINGS_KEY = 'scheduler';
/** How late a write that may be late is made. */
const LATE_WRITE_MS = 1000;
const EXPIRY_SWEEP_MS = 10_000;
const ASSIGN_TIMEOUT_MS = 5000;

type AssignEffect = Extract<Effect, { kind: 'assign' }>;

@Injectable()
export class SchedulerService implements OnModuleInit, OnApplicationShutdown {
  private readonly core: SchedulerCore;
  private readonly log = new Logger('Scheduler');
  private keys!: KeyPair;
  private jobsKv!: WriteBehind;
  private workersKv!: WriteBehind;
  private settingsKv!: WriteBehind;
  private metrics!: SchedulerMetrics;
  private timer?: NodeJS.Timeout;
  private dispatchQueued = false;
  /** Set once the stored state is loaded (see `loaded`). */
  private ready = false;
  private lastExpirySweep = 0;
  /** Ended jobs whose result is being published, then stored (see `stored`). */
  private readonly settling = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(SCHEDULER_CONFIG) private readonly config: SchedulerServiceConfig,
    @Inject(Ops) private readonly ops: Ops,
    @Inject(LEADERSHIP) private readonly leadership: Leadership | null,
    @Inject(LogReader) private readonly logReader: LogReader,
  ) {
    this.core = new SchedulerCore(config);
  }

  /** The key clients seal job secrets to. */
  publicKey(): string {
    this.loaded();
    return this.keys.publicKey;
  }

  async onModuleInit(): Promise<void> {
    this.keys = await loadOrMakeKey(this.config.keyFile);
    const [jobs, workers, settings] = await throughBusRestarts(
      'opening the scheduler buckets',
      () => Promise.all([openBucket(this.bus, buckets.jobs), openBucket(this.bus, buckets.workers), openBucket(this.bus, buckets.settings)]),
      (m) => this.log.warn(m),
    );
    const onError = (key: string, e: unknown) => this.log.warn(`storing ${key} failed, retrying: ${String(e)}`);
    this.jobsKv = new WriteBehind(bucketWriter(this.bus, jobs, buckets.jobs), onError);
    this.workersKv = new WriteBehind(bucketWriter(this.bus, workers, buckets.workers), onError);
    this.settingsKv = new WriteBehind(bucketWriter(this.bus, settings, buckets.settings), onError);
    const now = Date.now();
    const state = await this.loadState(jobs, workers, settings);
    const restored = this.core.restore(state.jobs, state.workers, state.settings ?? undefined, now);
    this.log.log(`restored ${this.core.jobs.size} jobs, ${this.core.workers.size} workers, pools: ${this.core.settings.pools.join(', ') || 'none'}`);
    this.metrics = new SchedulerMetrics(this.ops.metrics, this.core);
    this.ops.addCheck('state-writes', () => (this.jobsKv.pending > 10_000 ? `${this.jobsKv.pending} job records not yet stored` : undefined));
    this.run(restored);
    this.ready = true;
    this.timer = setInterval(() => this.onTick(), Math.min(250, this.config.affinityWaitMs / 2 || 250));
    this.scheduleDispatch();
  }

  /**
   * Reads back everything the buckets hold. A NATS restart during the read can end a key
   * listing early without an error, and a partial restore would forget queued jobs: so a
   * read during which the connection dropped, or that failed, is made again.
   */
  private async loadState(jobs: KV, workers: KV, settings: KV): Promise<{ jobs: JobRecord[]; workers: WorkerRecord[]; settings: SchedulerSettings | null }> {
    let disconnects = 0;
    const statuses = this.bus.status()[Symbol.asyncIterator]();
    let loaded = false;
    void (async () => {
      // Counts connection drops until the state is loaded, then lets go of the status stream.
      for (let next = await statuses.next(); !next.done && !loaded; next = await statuses.next()) {
        if (next.value.type === 'disconnect' || next.value.type === 'reconnect') disconnects++;
      }
      await statuses.return?.();
    })();
    for await (const attempt of attempts({ firstMs: 200 })) {
      const before = disconnects;
      try {
        const state = {
          jobs: await readBucket<JobRecord>(jobs, buckets.jobs),
          workers: await readBucket<WorkerRecord>(workers, buckets.workers),
          settings: await readOne<SchedulerSettings>(settings, SETTINGS_KEY),
        };
        if (disconnects === before) {
          loaded = true;
          return state;
        }
        throw new Error('the connection to NATS dropped during the read');
      } catch (e) {
        this.log.warn(`reading the scheduler's state failed (attempt ${attempt + 1}), trying again: ${String(e)}`);
      }
    }
    throw new Error('unreachable: attempts() without a limit does not end');
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await Promise.race([Promise.all([this.jobsKv.flush(), this.workersKv.flush(), this.settingsKv.flush()]), new Promise((r) => setTimeout(r, 5000))]);
    // Only now: a standby that takes over reads what was just written.
    await this.leadership?.release();
  }

  // ---- the protocol: clients ------------------------------------------------------------

  /** Queues a job (or answers with the job its idempotency key made); replies once it is stored. */
  async submit(submission: JobSubmission): Promise<Submitted> {
    const { job, effects, repeated } = this.decide((core) => {
      const bad = this.openSecretsCheck(submission.secrets);
      if (bad) throw new RejectedError('forbidden', bad);
      return core.submit(submission, Date.now(), undefined, currentTrace());
    });
    this.run(effects);
    await this.stored(job);
    return submitted(job, repeated);
  }

  status(client: string, job: string): JobStatus {
    return jobStatus(this.decide((core) => core.jobOf(client, job)));
  }

  cancel(client: string, job: string): JobStatus {
    this.act((core) => core.cancel(client, job, Date.now()));
    return jobStatus(this.core.jobs.get(job)!);
  }

  /** A page of the job's log, with its state and which worker ran each attempt. */
  async logs(client: string, job: string, cursor: number): Promise<LogsPage & RunHistory & Pick<JobStatus, 'state'>> {
    const record = this.decide((core) => core.jobOf(client, job));
    const history = runHistory(record);
    return { ...(await this.logReader.page(record.client, record.id, history, cursor)), state: record.state, ...history };
  }

  // ---- the protocol: workers ------------------------------------------------------------

  /** `cancel`: jobs the worker says it runs that it must stop. */
  register(r: Register): Registered & { cancel: string[] } {
    const { cancel, effects } = this.decide((core) =>
      core.register(
        {
          id: r.worker,
          pool: r.pool,
          platform: r.platform,
          capacity: r.capacity,
          publicKey: r.publicKey,
          freeBytes: r.store.freeBytes,
          hints: r.hints,
          running: r.running,
          ...(r.version !== undefined ? { version: r.version } : {}),
          ...(r.lastPruneAt !== undefined ? { lastPruneAt: r.lastPruneAt } : {}),
        },
        Date.now(),
      ),
    );
    this.run(effects);
    return { heartbeatMs: this.config.heartbeatMs, leaseTtlMs: this.config.leaseTtlMs, cancel };
  }

  heartbeat(beat: Heartbeat): HeartbeatReply {
    const { known, cancel, effects } = this.decide((core) => core.heartbeat(beat.worker, beat, Date.now()));
    this.run(effects);
    return { known, cancel };
  }

  started(worker: string, job: string, lease: string): void {
    this.act((core) => core.started(worker, job, lease, Date.now()));
  }

  /** Replies once a recorded outcome is stored: the worker may forget the job then. */
  async complete(c: Complete): Promise<{ recorded: boolean; reason?: string }> {
    const { recorded, reason, effects } = this.decide((core) => core.complete(c.worker, c.job, c.lease, c.outcome, Date.now()));
    this.run(effects);
    const job = this.core.jobs.get(c.job);
    if (recorded && job) {
      this.log.log(`job ${job.id} (${job.name}) ${c.outcome.state} on ${c.worker}`, jobFields(job, c.worker));
      await this.stored(job);
    }
    return { recorded, ...(reason === undefined ? {} : { reason }) };
  }

  // ---- the protocol: operators ----------------------------------------------------------

  pools() {
    return this.decide((core) => core.pools());
  }

  /** Jobs queued or running, oldest first (a dashboard fills its board from them when it starts). */
  activeJobs(): ActiveJob[] {
    const now = Date.now();
    return this.decide((core) =>
      [...core.jobs.values()].filter((j) => !TERMINAL.includes(j.state)).map((j) => ({ ...jobEvent(j, now), submittedAt: j.submittedAt })),
    );
  }

  workers(): WorkerInfo[] {
    const now = Date.now();
    return this.decide((core) => [...core.workers.values()].map((w) => workerInfo(w, core.affinity.hintsOf(w.id, now).length)));
  }

  queues() {
    return this.decide((core) => core.queuedByClient());
  }

  clients() {
    return this.decide((core) => core.clients());
  }

  pauseWorker(worker: string): void {
    this.act((core) => core.setWorkerFlag(worker, 'paused', true));
  }

  /** Undoes a pause and a drain alike. */
  unpauseWorker(worker: string): void {
    this.act((core) => [...core.setWorkerFlag(worker, 'paused', false), ...core.setWorkerFlag(worker, 'draining', false)]);
  }

  drainWorker(worker: string): void {
    this.act((core) => core.setWorkerFlag(worker, 'draining', true));
  }

  /** Its runs go back to the queue. */
  forgetWorker(worker: string): void {
    this.act((core) => core.forgetWorker(worker, Date.now()));
  }

  /** Unpausing a pool also ends the drain of its workers, as unpausing a worker does. */
  setPoolPaused(pool: string, paused: boolean): void {
    this.act((core) => [
      ...core.setPoolPaused(pool, paused),
      ...(paused ? [] : [...core.workers.values()].filter((w) => w.pool === pool && w.draining).flatMap((w) => core.setWorkerFlag(w.id, 'draining', false))),
    ]);
  }

  drainPool(pool: string): void {
    this.act((core) => core.drainPool(pool));
  }

  /** An operator's cancel: any client's job. */
  cancelAny(job: string): JobStatus {
    this.act((core) => core.cancel(undefined, job, Date.now()));
    return jobStatus(this.core.jobs.get(job)!);
  }

  setRate(client: string, rate: number): void {
    this.act((core) => core.setRate(client, rate));
  }

  /**
   * The one readiness gate. The controller's subjects, through Nest and directly, are
   * served before onModuleInit has loaded the stored state: until then every operation
   * is answered "unavailable" (callers retry it, as they do a request no one answers),
   * never from an empty scheduler.
   */
  private loaded(): SchedulerCore {
    if (!this.ready) throw new RejectedError('unavailable', 'the scheduler is still loading its state');
    return this.core;
  }

  /** Asks the core, once loaded; a decision that refuses becomes a rejection with the same code. */
  private decide<T>(ask: (core: SchedulerCore) => T): T {
    const core = this.loaded();
    try {
      return ask(core);
    } catch (e) {
      if (e instanceof SchedulerError) throw new RejectedError(e.code, e.message);
      throw e;
    }
  }

  /** Asks the core for a change and carries it out. */
  private act(change: (core: SchedulerCore) => readonly Effect[]): void {
    this.run(this.decide(change));
  }

  private openSecretsCheck(secrets: readonly SealedSecret[]): string | undefined {
    for (const s of secrets) {
      try {
        open(this.keys, s.sealed);
      } catch {
        return `secret "${s.id}" was not sealed for this scheduler's key (fetch the key again with cairn.v1.scheduler.key)`;
      }
    }
    return undefined;
  }

  // ---- carrying out effects -------------------------------------------------------------

  /** Applies effects, then looks for work to hand out. */
  private run(effects: readonly Effect[]): void {
    this.carryOut(effects);
    if (effects.length) this.scheduleDispatch();
  }

  /**
   * Carries out effects in order, except assignments: those to one worker (a dispatch
   * fills all its free slots at once) go out together, in one message.
   */
  private carryOut(effects: readonly Effect[]): void {
    let batches: Map<WorkerRecord, AssignEffect[]> | undefined;
    for (const effect of effects) {
      if (effect.kind !== 'assign') {
        this.apply(effect);
        continue;
      }
      this.metrics.affinity.inc({ result: effect.affinity });
      this.metrics.assignmentLatency.observe((Date.now() - effect.job.queuedAt) / 1000);
      batches ??= new Map();
      const batch = batches.get(effect.worker);
      if (batch) batch.push(effect);
      else batches.set(effect.worker, [effect]);
    }
    if (batches) for (const [worker, batch] of batches) void this.sendAssignments(worker, batch);
  }

  /**
   * Waits until the job's current state is stored (callers reply to clients after this);
   * for a job that has ended, until its result is published and its final state stored.
   */
  private async stored(job: JobRecord): Promise<void> {
    const settling = this.settling.get(job.id);
    if (settling) return settling;
    // Every change of a job's state was handed to jobsKv by its persist-job effect.
    await this.jobsKv.written(job.id);
  }

  private onTick(): void {
    if (this.stopping) return;
    const now = Date.now();
    this.run(this.core.tick(now));
    // Finished jobs are kept for hours: looking for expired ones (a scan of every job
    // kept) a few times a minute is plenty, not on every tick.
    if (now - this.lastExpirySweep >= EXPIRY_SWEEP_MS) {
      this.lastExpirySweep = now;
      for (const id of this.core.expired(now, this.config.keepFinishedMs)) void this.jobsKv.delete(id);
    }
    this.scheduleDispatch();
  }

  private scheduleDispatch(): void {
    if (this.dispatchQueued || this.stopping) return;
    this.dispatchQueued = true;
    setImmediate(() => {
      this.dispatchQueued = false;
      this.carryOut(this.core.dispatch(Date.now()));
    });
  }

  private apply(effect: Exclude<Effect, AssignEffect>): void {
    switch (effect.kind) {
      case 'persist-job':
        if (effect.soon) this.jobsKv.putLater(effect.job.id, effect.job, LATE_WRITE_MS);
        else void this.jobsKv.put(effect.job.id, effect.job);
        return;
      case 'persist-worker':
        void this.workersKv.put(effect.worker.id, effect.worker);
        return;
      case 'forget-worker':
        void this.workersKv.delete(effect.worker);
        return;
      case 'persist-settings':
        void this.settingsKv.put(SETTINGS_KEY, this.core.settings);
        return;
      case 'event':
        this.publishEvent(effect.job);
        return;
      case 'requeued':
        this.log.warn(
          `job ${effect.job.id} (${effect.job.name}, client ${effect.job.client}) requeued: run ${effect.attempt} lost: ${effect.reason}`,
          jobFields(effect.job, effect.job.requeues?.at(-1)?.worker),
        );
        this.publishEvent(effect.job, effect.reason);
        return;
      case 'cancel':
        void call(
          this.bus,
          subjects.toWorker(effect.worker, 'cancel'),
          { job: effect.job.id, lease: effect.lease, reason: effect.reason },
          { timeoutMs: 2000 },
        );
        return;
      case 'publish-result':
        this.settle(effect.job);
        return;
    }
  }

  /**
   * Hands a worker its new jobs once every one's new state is stored (so a restart can
   * never hand a run out twice), leaving out a run lost or cancelled meanwhile.
   */
  private async sendAssignments(worker: WorkerRecord, batch: readonly AssignEffect[]): Promise<void> {
    await Promise.all(batch.map(({ job }) => this.jobsKv.written(job.id)));
    const offers: { job: JobRecord; lease: string; message: Assignment }[] = [];
    for (const { job, lease } of batch) {
      if (job.lease !== lease) continue; // lost or cancelled while being stored
      try {
        const secrets = job.secrets.map((s) => ({ id: s.id, sealed: seal(worker.publicKey, open(this.keys, s.sealed)) }));
        offers.push({ job, lease, message: assignment(job, lease, secrets) });
      } catch (e) {
        this.run(this.core.assignmentAnswered(job.id, lease, false, `cannot re-seal its secrets for ${worker.id}: ${String(e)}`));
      }
    }
    if (offers.length === 0) return;
    const answers = await this.offer(
      worker.id,
      offers.map((o) => o.message),
    );
    offers.forEach(({ job, lease }, i) => {
      const { accepted, reason } = answers[i]!;
      if (accepted) this.log.log(`job ${job.id} (${job.name}) assigned to ${worker.id}, run ${job.attempts}`, jobFields(job, worker.id));
      else this.log.warn(`job ${job.id} (${job.name}) refused by ${worker.id}: ${reason ?? 'no reason given'}`, jobFields(job, worker.id));
      this.run(this.core.assignmentAnswered(job.id, lease, accepted, accepted ? undefined : reason));
    });
  }

  /**
   * Sends assignments to a worker, several in one `assign-batch` message. A batch no one
   * answers (a worker-agent from before batches, or the message lost) is sent again one
   * assignment at a time: a worker takes a repeated assignment as the same one. Each
   * assignment carries its job's trace in its body (a batch holds several submissions');
   * one sent alone also in its header, whatever request the dispatch happened in.
   */
  private async offer(worker: string, assignments: readonly Assignment[]): Promise<Accepted[]> {
    const one = async (a: Assignment): Promise<Accepted> => {
      const send = () => call<Accepted>(this.bus, subjects.toWorker(worker, 'assign'), a, { timeoutMs: ASSIGN_TIMEOUT_MS });
      const reply = await (a.trace === undefined ? send() : withTrace(a.trace, send));
      return reply.ok ? reply.value : { accepted: false, reason: reply.error.message };
    };
    if (assignments.length === 1) return [await one(assignments[0]!)];
    const reply = await call<BatchAccepted>(this.bus, subjects.toWorker(worker, 'assign-batch'), { assignments }, { timeoutMs: ASSIGN_TIMEOUT_MS });
    if (reply.ok && reply.value.answers.length === assignments.length) return reply.value.answers;
    if (!reply.ok && reply.error.code === 'unavailable') return Promise.all(assignments.map(one));
    const reason = reply.ok ? `worker answered ${reply.value.answers.length} of ${assignments.length} assignments` : reply.error.message;
    return assignments.map(() => ({ accepted: false, reason }));
  }

  private publishEvent(job: JobRecord, requeued?: string): void {
    this.bus.publish(subjects.jobEvent(job.pool, job.state), JSON.stringify(jobEvent(job, Date.now(), requeued)));
  }

  private settle(job: JobRecord): void {
    if (this.settling.has(job.id)) return;
    const done = this.publishResult(job).finally(() => this.settling.delete(job.id));
    this.settling.set(job.id, done);
  }

  private async publishResult(job: JobRecord): Promise<void> {
    if (job.state === 'succeeded' || job.state === 'failed' || job.state === 'cancelled') this.metrics.results.inc({ state: job.state });
    if (job.failure?.includes('lost')) this.metrics.lostRuns.inc();
    const result = buildResult(job, this.core.workers.get(job.worker ?? '')?.platform, Date.now());
    for await (const _attempt of attempts()) {
      try {
        // The message ID makes a repeat (after a crash or a retried completion) a no-op.
        await durablePublish(this.bus, subjects.result(job.pool), JSON.stringify(result), {
          msgId: job.id,
          ...(job.trace === undefined ? {} : { trace: job.trace }),
        });
        job.resultPublished = true;
        break;
      } catch (e) {
        if (this.stopping) return;
        this.log.warn(`publishing the result of ${job.id} failed, retrying: ${String(e)}`, jobFields(job, job.worker));
      }
    }
    await this.jobsKv.put(job.id, job);
  }
}

/**
 * A job's fields on a log line about it (service-kit's ServiceLogger spreads them into the
 * line); its trace too, as its lines are written outside the request that submitted it.
 */
function jobFields(job: JobRecord, worker: string | undefined): Record<string, string> {
  return {
    job: job.id,
    pool: job.pool,
    client: job.client,
    ...(worker === undefined ? {} : { worker }),
    ...(job.trace === undefined ? {} : { trace: job.trace }),
  };
}

async function readOne<T>(kv: KV, key: string): Promise<T | null> {
  const entry = await kv.get(key);
  if (!entry || entry.operation !== 'PUT') return null;
  return entry.json<T>();
}

async function loadOrMakeKey(file: string): Promise<KeyPair> {
  if (existsSync(file)) return importKeyPair(await readFile(file, 'utf8'));
  const keys = generateKeyPair();
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, exportPrivateKey(keys.privateKey), { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  return importKeyPair(await readFile(file, 'utf8'));
}
