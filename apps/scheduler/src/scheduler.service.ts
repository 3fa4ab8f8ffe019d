/**
 * The scheduler's shell: holds the SchedulerCore, loads it from the KV buckets at start,
 * and carries out the effects its decisions return — durable writes first, then the
 * messages that depend on them (an assignment is sent only once the job's new state is
 * stored, so a scheduler restart can never hand the same run out twice).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  buckets,
  call,
  durablePublish,
  exportPrivateKey,
  generateKeyPair,
  importKeyPair,
  open,
  openBucket,
  seal,
  subjects,
  type Accepted,
  type Assignment,
  type BuildResult,
  type JobEvent,
  type KeyPair,
  type SealedSecret,
} from '@cairn/contracts';
import { BUS, Ops } from '@cairn/service-kit';
import { DEFAULT_CONFIG, SchedulerCore, type Effect, type SchedulerConfig } from './core/scheduler-core.js';
import type { JobRecord, SchedulerSettings, WorkerRecord } from './core/records.js';
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

@Injectable()
export class SchedulerService implements OnModuleInit, OnApplicationShutdown {
  readonly core: SchedulerCore;
  private readonly log = new Logger('Scheduler');
  private keys!: KeyPair;
  private jobsKv!: WriteBehind;
  private workersKv!: WriteBehind;
  private settingsKv!: WriteBehind;
  private metrics!: SchedulerMetrics;
  private timer?: NodeJS.Timeout;
  private dispatchQueued = false;
  /** Set once the stored state is loaded; requests wait for it (see the controller). */
  ready = false;
  private markLoaded!: () => void;
  /** Resolves once the stored state is loaded (direct-handlers.ts subscribes then). */
  readonly loaded = new Promise<void>((resolve) => (this.markLoaded = resolve));
  private lastExpirySweep = 0;
  /** Ended jobs whose result is being published, then stored (see `stored`). */
  private readonly settling = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(SCHEDULER_CONFIG) private readonly config: SchedulerServiceConfig,
    @Inject(Ops) private readonly ops: Ops,
    @Inject(LEADERSHIP) private readonly leadership: Leadership | null,
  ) {
    this.core = new SchedulerCore(config);
  }

  get publicKey(): string {
    return this.keys.publicKey;
  }

  async onModuleInit(): Promise<void> {
    this.keys = await loadOrMakeKey(this.config.keyFile);
    const [jobs, workers, settings] = await Promise.all([openBucket(this.bus, buckets.jobs), openBucket(this.bus, buckets.workers), openBucket(this.bus, buckets.settings)]);
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
    this.markLoaded();
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
    for (let attempt = 1; ; attempt++) {
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
        this.log.warn(`reading the scheduler's state failed (attempt ${attempt}), trying again: ${String(e)}`);
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await Promise.race([Promise.all([this.jobsKv.flush(), this.workersKv.flush(), this.settingsKv.flush()]), new Promise((r) => setTimeout(r, 5000))]);
    // Only now: a standby that takes over reads what was just written.
    await this.leadership?.release();
  }

  /** Applies effects, then looks for work to hand out. */
  run(effects: readonly Effect[]): void {
    for (const effect of effects) this.apply(effect);
    if (effects.length) this.scheduleDispatch();
  }

  /**
   * Waits until the job's current state is stored (callers reply to clients after this);
   * for a job that has ended, until its result is published and its final state stored.
   */
  async stored(job: JobRecord): Promise<void> {
    const settling = this.settling.get(job.id);
    if (settling) return settling;
    await this.jobsKv.put(job.id, job);
  }

  openSecretsCheck(secrets: readonly SealedSecret[]): string | undefined {
    for (const s of secrets) {
      try {
        open(this.keys, s.sealed);
      } catch {
        return `secret "${s.id}" was not sealed for this scheduler's key (fetch the key again with cairn.v1.scheduler.key)`;
      }
    }
    return undefined;
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
      const effects = this.core.dispatch(Date.now());
      for (const effect of effects) this.apply(effect);
    });
  }

  private apply(effect: Effect): void {
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
        this.log.warn(`job ${effect.job.id} (${effect.job.name}, client ${effect.job.client}) requeued: run ${effect.attempt} lost: ${effect.reason}`);
        this.publishEvent(effect.job, effect.reason);
        return;
      case 'assign':
        this.metrics.affinity.inc({ result: effect.affinity });
        this.metrics.assignmentLatency.observe((Date.now() - effect.job.queuedAt) / 1000);
        void this.sendAssignment(effect.job, effect.worker, effect.lease);
        return;
      case 'cancel':
        void call(this.bus, subjects.toWorker(effect.worker, 'cancel'), { job: effect.job.id, lease: effect.lease, reason: effect.reason }, { timeoutMs: 2000 });
        return;
      case 'publish-result':
        this.settle(effect.job);
        return;
    }
  }

  private async sendAssignment(job: JobRecord, worker: WorkerRecord, lease: string): Promise<void> {
    await this.jobsKv.put(job.id, job);
    if (job.lease !== lease) return; // lost or cancelled while being stored
    let secrets: SealedSecret[];
    try {
      secrets = job.secrets.map((s) => ({ id: s.id, sealed: seal(worker.publicKey, open(this.keys, s.sealed)) }));
    } catch (e) {
      this.run(this.core.assignmentAnswered(job.id, lease, false, `cannot re-seal its secrets for ${worker.id}: ${String(e)}`));
      return;
    }
    const assignment: Assignment = {
      job: job.id,
      lease,
      client: job.client,
      name: job.name,
      spec: job.spec,
      ...(job.contextDigest === undefined ? {} : { contextDigest: job.contextDigest }),
      secrets,
      outputs: job.outputs,
      timeoutSeconds: job.timeoutSeconds,
      cacheHint: job.cacheHint,
      attempt: job.attempts,
    };
    const reply = await call<Accepted>(this.bus, subjects.toWorker(worker.id, 'assign'), assignment, { timeoutMs: 5000 });
    const accepted = reply.ok && reply.value.accepted;
    const reason = reply.ok ? reply.value.reason : reply.error.message;
    this.run(this.core.assignmentAnswered(job.id, lease, accepted, accepted ? undefined : reason));
  }

  private publishEvent(job: JobRecord, requeued?: string): void {
    const event: JobEvent = {
      job: job.id,
      name: job.name,
      client: job.client,
      pool: job.pool,
      state: job.state,
      at: Date.now(),
      ...(job.worker === undefined ? {} : { worker: job.worker }),
      ...(job.failure === undefined ? {} : { failure: job.failure }),
      ...(requeued === undefined ? {} : { requeued }),
    };
    this.bus.publish(subjects.jobEvent(job.pool, job.state), JSON.stringify(event));
  }

  private settle(job: JobRecord): void {
    if (this.settling.has(job.id)) return;
    const done = this.publishResult(job).finally(() => this.settling.delete(job.id));
    this.settling.set(job.id, done);
  }

  private async publishResult(job: JobRecord): Promise<void> {
    if (job.state === 'succeeded' || job.state === 'failed' || job.state === 'cancelled') this.metrics.results.inc({ state: job.state });
    if (job.failure?.includes('lost')) this.metrics.lostRuns.inc();
    const outcome = job.outcome;
    const result: BuildResult = {
      job: job.id,
      name: job.name,
      client: job.client,
      pool: job.pool,
      platform: outcome?.platform ?? this.core.workers.get(job.worker ?? '')?.platform ?? 'unknown',
      worker: job.worker ?? 'none',
      spec: job.spec,
      ...(job.contextDigest === undefined ? {} : { contextDigest: job.contextDigest }),
      cacheHint: job.cacheHint,
      state: job.state as BuildResult['state'],
      ...(job.failure === undefined ? {} : { failure: job.failure }),
      steps: outcome?.steps ?? [],
      ...(outcome?.snapshotId === undefined ? {} : { snapshotId: outcome.snapshotId }),
      artifacts: outcome?.artifacts ?? [],
      attempts: Math.max(1, job.attempts),
      submittedAt: job.submittedAt,
      startedAt: job.startedAt ?? job.assignedAt ?? job.submittedAt,
      finishedAt: job.finishedAt ?? Date.now(),
    };
    for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
      try {
        // The message ID makes a repeat (after a crash or a retried completion) a no-op.
        await durablePublish(this.bus, subjects.result(job.pool), JSON.stringify(result), { msgId: job.id });
        break;
      } catch (e) {
        if (this.stopping) return;
        this.log.warn(`publishing the result of ${job.id} failed, retrying: ${String(e)}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    job.resultPublished = true;
    await this.jobsKv.put(job.id, job);
  }
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
