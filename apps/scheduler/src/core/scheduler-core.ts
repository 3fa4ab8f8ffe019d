/**
 * The scheduler's decisions, with no I/O: every method changes the in-memory state and
 * returns the effects the service must carry out (persist a record, send an assignment,
 * publish a result...). Time comes in as an argument, so the tests can drive it.
 *
 * A job's life: queued -> assigned (a lease on one worker) -> running -> succeeded |
 * failed | cancelled. A lost lease (worker silent past the TTL, forgotten, or it dropped
 * the job) sends the job back to the queue until `maxAttempts` runs have been lost; then
 * it fails with the reason. Only the holder of the current lease can complete a job, so
 * exactly one result is recorded however many workers once held it.
 */
import { randomBytes } from 'node:crypto';
import { TERMINAL, type JobState, type JobSubmission, type Outcome } from '@cairn/contracts';
import { CacheAffinity } from './cache-affinity.js';
import { FairQueue } from './fair-queue.js';
import type { JobRecord, SchedulerSettings, WorkerRecord } from './records.js';

export interface SchedulerConfig {
  /** A worker not heard from for this long has lost its leases. */
  readonly leaseTtlMs: number;
  readonly heartbeatMs: number;
  /** How long a job waits for a busy worker that holds its cache hint. */
  readonly affinityWaitMs: number;
  /** How long a worker counts as holding a hint after building it. */
  readonly hintTtlMs: number;
  /** Runs lost to dead workers before a job fails. */
  readonly maxAttempts: number;
  /** Extra time past a job's own timeout before the scheduler stops waiting for its worker. */
  readonly timeoutGraceMs: number;
}

export const DEFAULT_CONFIG: SchedulerConfig = {
  leaseTtlMs: 10_000,
  heartbeatMs: 2_000,
  affinityWaitMs: 2_000,
  hintTtlMs: 6 * 3600_000,
  maxAttempts: 3,
  timeoutGraceMs: 30_000,
};

export type Effect =
  /** `soon`: the write may be late (a state whose loss in a crash changes nothing). */
  | { readonly kind: 'persist-job'; readonly job: JobRecord; readonly soon?: boolean }
  | { readonly kind: 'persist-worker'; readonly worker: WorkerRecord }
  | { readonly kind: 'forget-worker'; readonly worker: string }
  | { readonly kind: 'persist-settings' }
  | { readonly kind: 'assign'; readonly job: JobRecord; readonly worker: WorkerRecord; readonly lease: string; readonly affinity: 'hit' | 'miss' | 'none' }
  | { readonly kind: 'cancel'; readonly job: JobRecord; readonly worker: string; readonly lease: string; readonly reason: string }
  /**
   * Publish the job's result, then store its terminal state marked as published: one
   * write instead of two. A crash in between restores the job as it was before it ended;
   * its worker, still waiting for an answer to `complete`, reports again, and the result
   * stream drops the repeated publish by its message ID.
   */
  | { readonly kind: 'publish-result'; readonly job: JobRecord }
  | { readonly kind: 'event'; readonly job: JobRecord }
  /** A lost run went back to the queue: said in the scheduler's log and on the job's event. */
  | { readonly kind: 'requeued'; readonly job: JobRecord; readonly attempt: number; readonly reason: string };

export class SchedulerError extends Error {
  override readonly name = 'SchedulerError';
  constructor(
    readonly code: 'unknown-pool' | 'not-found' | 'conflict',
    message: string,
  ) {
    super(message);
  }
}

/** Hints kept per worker record. */
const MAX_HINTS = 1000;

// A lease only has to differ from every other lease: a random prefix per process (so a
// restarted scheduler never repeats one) and a counter, not fresh randomness per lease.
const LEASE_PREFIX = randomBytes(6).toString('base64url');
let leases = 0;
const newLease = () => `${LEASE_PREFIX}.${(++leases).toString(36)}`;
export const newJobId = () => `j-${Date.now().toString(36)}${randomBytes(8).toString('hex')}`;

export class SchedulerCore {
  readonly jobs = new Map<string, JobRecord>();
  readonly workers = new Map<string, WorkerRecord>();
  readonly settings: SchedulerSettings = { rates: {}, pausedPools: [], pools: [] };
  private readonly queues = new Map<string, FairQueue>();
  readonly affinity: CacheAffinity;
  /** Jobs finished per client, for the admin view. */
  private readonly finished = new Map<string, number>();
  /** Workers whose hints changed since they were last stored. */
  private readonly hintsChanged = new Set<string>();
  /** Job IDs by client and idempotency key, for as long as the jobs are kept. */
  private readonly byKey = new Map<string, string>();

  constructor(readonly config: SchedulerConfig = DEFAULT_CONFIG) {
    this.affinity = new CacheAffinity(config.hintTtlMs);
  }

  // ---- restoring after a restart ------------------------------------------------------

  /** Puts back what the buckets held; leases stand until their workers are silent past the TTL. */
  restore(jobs: Iterable<JobRecord>, workers: Iterable<WorkerRecord>, settings: SchedulerSettings | undefined, now: number): Effect[] {
    if (settings) Object.assign(this.settings, settings);
    for (const w of workers) {
      for (const [hint, at] of Object.entries(w.hints ?? {})) this.affinity.note(hint, w.id, at);
      w.running = [];
      w.connected = true; // give it one TTL to speak up
      w.lastSeen = now;
      this.workers.set(w.id, w);
    }
    const effects: Effect[] = [];
    const ordered = [...jobs].sort((a, b) => a.submittedAt - b.submittedAt);
    for (const job of ordered) {
      this.jobs.set(job.id, job);
      if (job.idempotencyKey !== undefined) this.byKey.set(keyOf(job.client, job.idempotencyKey), job.id);
      if (job.state === 'queued') this.queue(job.pool).push(this.ref(job));
      else if (job.state === 'assigned' || job.state === 'running') {
        const worker = job.worker === undefined ? undefined : this.workers.get(job.worker);
        // Whoever sent the assignment is gone: from now on its worker's heartbeats decide.
        job.accepted = true;
        if (worker) worker.running.push(job.id);
        else effects.push(...this.loseLease(job, `its worker ${job.worker ?? '?'} is unknown after a scheduler restart`, now));
      } else if (!job.resultPublished && job.outcome) {
        effects.push({ kind: 'publish-result', job });
      }
    }
    return effects;
  }

  // ---- clients ------------------------------------------------------------------------

  knownPool(pool: string): boolean {
    return this.settings.pools.includes(pool);
  }

  /**
   * Queues a new job; or, for a key this client has used already, answers with the job it
   * made then (`repeated`), provided it is the same build. `trace`: the submission's trace ID.
   */
  submit(submission: JobSubmission, now: number, id = newJobId(), trace?: string): { job: JobRecord; effects: Effect[]; repeated?: true } {
    const key = submission.idempotencyKey === undefined ? undefined : keyOf(submission.client, submission.idempotencyKey);
    const first = key === undefined ? undefined : this.jobs.get(this.byKey.get(key) ?? '');
    if (first) {
      if (first.pool !== submission.pool || first.spec !== submission.spec || first.contextDigest !== submission.contextDigest) {
        throw new SchedulerError(
          'conflict',
          `idempotency key "${submission.idempotencyKey}" already made job ${first.id}, a different build (pool, spec or context differ); use a new key`,
        );
      }
      return { job: first, effects: [], repeated: true };
    }
    if (!this.knownPool(submission.pool)) {
      const known = this.settings.pools.length ? this.settings.pools.join(', ') : 'none yet (no worker has registered)';
      throw new SchedulerError('unknown-pool', `unknown pool "${submission.pool}"; known pools: ${known}`);
    }
    const job: JobRecord = { ...submission, id, state: 'queued', attempts: 0, submittedAt: now, queuedAt: now, ...(trace === undefined ? {} : { trace }) };
    this.jobs.set(id, job);
    if (key !== undefined) this.byKey.set(key, id);
    this.queue(job.pool).push(this.ref(job));
    return {
      job,
      effects: [
        { kind: 'persist-job', job },
        { kind: 'event', job },
      ],
    };
  }

  jobOf(client: string, id: string): JobRecord {
    const job = this.jobs.get(id);
    // Another client's job is "not found": its existence is not theirs to know.
    if (!job || job.client !== client) throw new SchedulerError('not-found', `no job ${id} for client ${client}`);
    return job;
  }

  cancel(client: string | undefined, id: string, now: number): Effect[] {
    const job = client === undefined ? this.jobs.get(id) : this.jobOf(client, id);
    if (!job) throw new SchedulerError('not-found', `no job ${id}`);
    if (TERMINAL.includes(job.state)) throw new SchedulerError('conflict', `job ${id} has already ${job.state}`);
    if (job.state === 'queued') {
      this.queue(job.pool).remove(this.ref(job));
      return this.finish(job, 'cancelled', 'cancelled while queued', now);
    }
    job.cancelRequested = 'cancelled by request';
    return [
      { kind: 'persist-job', job },
      { kind: 'cancel', job, worker: job.worker!, lease: job.lease!, reason: job.cancelRequested },
    ];
  }

  // ---- workers ------------------------------------------------------------------------

  register(
    info: Pick<WorkerRecord, 'id' | 'pool' | 'platform' | 'capacity' | 'publicKey' | 'freeBytes' | 'version' | 'lastPruneAt'> & {
      hints: readonly string[];
      running: readonly { job: string; lease: string }[];
    },
    now: number,
  ): { cancel: string[]; effects: Effect[] } {
    const effects: Effect[] = [];
    const previous = this.workers.get(info.id);
    if (previous && previous.pool !== info.pool) {
      // It moved pools: what it held in the old one goes back to that queue.
      for (const id of [...previous.running]) effects.push(...this.loseLease(this.jobs.get(id)!, `worker ${info.id} re-registered in pool ${info.pool}`, now));
    }
    const worker: WorkerRecord = {
      id: info.id,
      pool: info.pool,
      platform: info.platform,
      capacity: info.capacity,
      publicKey: info.publicKey,
      paused: previous?.paused ?? false,
      draining: previous?.draining ?? false,
      refusing: false,
      connected: true,
      lastSeen: now,
      freeBytes: info.freeBytes,
      running: previous && previous.pool === info.pool ? previous.running : [],
      hints: previous?.hints ?? {},
      ...(info.version !== undefined ? { version: info.version } : {}),
      ...((info.lastPruneAt ?? previous?.lastPruneAt) !== undefined ? { lastPruneAt: info.lastPruneAt ?? previous?.lastPruneAt } : {}),
    };
    this.workers.set(worker.id, worker);
    for (const hint of info.hints) this.noteHint(hint, worker.id, now);
    if (!this.settings.pools.includes(info.pool)) {
      this.settings.pools.push(info.pool);
      effects.push({ kind: 'persist-settings' });
    }
    effects.push({ kind: 'persist-worker', worker });
    // A new process (a fresh key) holds nothing the old one ran.
    const restarted = previous !== undefined && previous.publicKey !== info.publicKey;
    return { cancel: this.reconcile(worker, info.running, now, effects, restarted ? 'restarted' : undefined), effects };
  }

  heartbeat(
    id: string,
    beat: {
      running: readonly { job: string; lease: string }[];
      freeBytes: number;
      refusing: boolean;
      hints: readonly string[];
      draining?: boolean;
      lastPruneAt?: number;
    },
    now: number,
  ): { known: boolean; cancel: string[]; effects: Effect[] } {
    const worker = this.workers.get(id);
    if (!worker || !worker.connected) return { known: false, cancel: [], effects: [] };
    worker.lastSeen = now;
    worker.freeBytes = beat.freeBytes;
    worker.refusing = beat.refusing;
    if (beat.lastPruneAt !== undefined) worker.lastPruneAt = beat.lastPruneAt;
    for (const hint of beat.hints) this.noteHint(hint, id, now);
    const effects: Effect[] = [];
    return { known: true, cancel: this.reconcile(worker, beat.running, now, effects, beat.draining ? 'draining' : undefined), effects };
  }

  /**
   * Compares what a worker says it runs with what the scheduler gave it. A job it runs
   * under a lease that is not the current one must stop; a job it should run but does
   * not mention (after a grace of one heartbeat) was lost and goes back to the queue.
   */
  private reconcile(
    worker: WorkerRecord,
    running: readonly { job: string; lease: string }[],
    now: number,
    effects: Effect[],
    gone?: 'draining' | 'restarted',
  ): string[] {
    const cancel: string[] = [];
    const reported = new Map(running.map((r) => [r.job, r.lease]));
    for (const [jobId, lease] of reported) {
      const job = this.jobs.get(jobId);
      if (!job || job.worker !== worker.id || job.lease !== lease || TERMINAL.includes(job.state)) cancel.push(jobId);
      else if (job.cancelRequested) cancel.push(jobId);
    }
    for (const jobId of [...worker.running]) {
      const job = this.jobs.get(jobId);
      if (!job) continue;
      const grace = (job.assignedAt ?? 0) + this.config.heartbeatMs * 2;
      // A draining worker that stops listing a job it accepted has handed it back, and a
      // restarted one has lost it: no assignment to them can still be on its way.
      if (!reported.has(jobId) && job.accepted !== false && (gone !== undefined || now > grace)) {
        const why =
          gone === 'draining'
            ? `worker ${worker.id} shut down and handed it back`
            : gone === 'restarted'
              ? `worker ${worker.id} lost it (the worker restarted)`
              : `worker ${worker.id} no longer runs it`;
        effects.push(...this.loseLease(job, why, now));
      }
    }
    return cancel;
  }

  /** The worker accepted an assignment (or refused it: the job goes back to the front). */
  assignmentAnswered(jobId: string, lease: string, accepted: boolean, reason: string | undefined): Effect[] {
    const job = this.jobs.get(jobId);
    if (!job || job.lease !== lease || job.state !== 'assigned') return [];
    if (accepted) {
      job.accepted = true;
      return [];
    }
    const worker = this.workers.get(job.worker!);
    if (worker) worker.refusing = true; // until its next heartbeat says otherwise
    this.release(job);
    job.attempts = Math.max(0, job.attempts - 1); // a refusal is not a lost run
    job.state = 'queued';
    job.failure = reason === undefined ? undefined : `refused by ${worker?.id ?? '?'}: ${reason}`;
    job.worker = undefined;
    job.lease = undefined;
    this.queue(job.pool).push(this.ref(job), true);
    return [
      { kind: 'persist-job', job },
      { kind: 'event', job },
    ];
  }

  started(workerId: string, jobId: string, lease: string, now: number): Effect[] {
    const job = this.jobs.get(jobId);
    if (!job || job.worker !== workerId || job.lease !== lease || job.state !== 'assigned') return [];
    job.state = 'running';
    job.accepted = true;
    job.startedAt = now;
    return [
      { kind: 'persist-job', job, soon: true },
      { kind: 'event', job },
    ];
  }

  /** Records a worker's outcome if it holds the current lease; a repeat of a recorded one is accepted again. */
  complete(workerId: string, jobId: string, lease: string, outcome: Outcome, now: number): { recorded: boolean; reason?: string; effects: Effect[] } {
    const job = this.jobs.get(jobId);
    if (!job) return { recorded: false, reason: `no job ${jobId}`, effects: [] };
    if (job.worker !== workerId || job.lease !== lease) {
      return { recorded: false, reason: `lease ${lease} of ${workerId} is not the current lease of ${jobId}`, effects: [] };
    }
    if (TERMINAL.includes(job.state)) {
      return { recorded: true, effects: job.resultPublished ? [] : [{ kind: 'publish-result', job }] };
    }
    job.outcome = outcome;
    job.startedAt ??= outcome.startedAt;
    const effects = this.finish(job, outcome.state, outcome.failure, now);
    if (outcome.state === 'succeeded') this.noteHint(job.cacheHint, workerId, now);
    return { recorded: true, effects };
  }

  // ---- time -------------------------------------------------------------------------

  /** Leases of silent workers, jobs far past their timeout, hints to store. */
  tick(now: number): Effect[] {
    const effects: Effect[] = [];
    for (const id of this.hintsChanged) {
      const worker = this.workers.get(id);
      if (worker) effects.push({ kind: 'persist-worker', worker });
    }
    this.hintsChanged.clear();
    for (const worker of this.workers.values()) {
      if (worker.connected && now - worker.lastSeen > this.config.leaseTtlMs) {
        worker.connected = false;
        for (const id of [...worker.running]) {
          effects.push(
            ...this.loseLease(
              this.jobs.get(id)!,
              `worker ${worker.id} stopped answering (no heartbeat for ${Math.round((now - worker.lastSeen) / 1000)} s)`,
              now,
            ),
          );
        }
        effects.push({ kind: 'persist-worker', worker });
      }
    }
    // Every assigned or running job is on its worker's `running` list (assign adds it,
    // release takes it off), so only those are scanned, not every job still kept.
    for (const worker of this.workers.values()) {
      for (const id of [...worker.running]) {
        const job = this.jobs.get(id);
        if (!job || (job.state !== 'assigned' && job.state !== 'running') || job.assignedAt === undefined) continue;
        if (now - job.assignedAt > job.timeoutSeconds * 1000 + this.config.timeoutGraceMs) {
          const worker = job.worker!;
          const lease = job.lease!;
          effects.push(...this.finish(job, 'failed', `timed out: no result ${job.timeoutSeconds} s after it started (worker ${worker})`, now));
          effects.push({ kind: 'cancel', job, worker, lease, reason: 'timed out' });
        }
      }
    }
    return effects;
  }

  /** A worker holds `hint` from `at`; remembered in its record (the freshest MAX_HINTS) so a restart keeps it. */
  private noteHint(hint: string, worker: string, at: number): void {
    if (!hint) return;
    this.affinity.note(hint, worker, at);
    const record = this.workers.get(worker);
    if (!record) return;
    const hints = (record.hints ??= {});
    hints[hint] = at;
    const names = Object.keys(hints);
    if (names.length > MAX_HINTS) {
      for (const old of names.sort((a, b) => hints[a]! - hints[b]!).slice(0, names.length - MAX_HINTS)) delete hints[old];
    }
    this.hintsChanged.add(worker);
  }

  // ---- dispatch ---------------------------------------------------------------------

  /** Assigns queued jobs to free workers, pool by pool. */
  dispatch(now: number): Effect[] {
    const effects: Effect[] = [];
    for (const [pool, queue] of this.queues) {
      if (queue.length === 0 || this.settings.pausedPools.includes(pool)) continue;
      const workers = [...this.workers.values()].filter((w) => w.pool === pool && w.connected && !w.paused && !w.draining && !w.refusing);
      let free = workers.filter((w) => w.running.length < w.capacity);
      while (free.length > 0 && queue.length > 0) {
        let assigned = false;
        for (const ref of queue.candidates()) {
          const job = this.jobs.get(ref.job)!;
          const choice = this.chooseWorker(job, workers, free, now);
          if (!choice) continue;
          queue.take(ref);
          effects.push(...this.assign(job, choice.worker, choice.affinity, now));
          if (choice.worker.running.length >= choice.worker.capacity) free = free.filter((w) => w !== choice.worker);
          assigned = true;
          break;
        }
        if (!assigned) break;
      }
    }
    return effects;
  }

  /**
   * A free worker that holds the job's hint; else, if such a worker exists but is busy
   * and the job has waited less than affinityWaitMs, nothing yet (keep the job for it);
   * else the least loaded free worker.
   */
  private chooseWorker(
    job: JobRecord,
    workers: WorkerRecord[],
    free: WorkerRecord[],
    now: number,
  ): { worker: WorkerRecord; affinity: 'hit' | 'miss' | 'none' } | undefined {
    const holders = this.affinity.holders(job.cacheHint, now);
    if (holders.length > 0) {
      const freeHolders = free.filter((w) => holders.includes(w.id));
      if (freeHolders.length > 0) return { worker: leastLoaded(freeHolders), affinity: 'hit' };
      const busyHolder = workers.some((w) => holders.includes(w.id));
      if (busyHolder && now - job.queuedAt < this.config.affinityWaitMs) return undefined;
      return { worker: leastLoaded(free), affinity: 'miss' };
    }
    return { worker: leastLoaded(free), affinity: 'none' };
  }

  private assign(job: JobRecord, worker: WorkerRecord, affinity: 'hit' | 'miss' | 'none', now: number): Effect[] {
    const lease = newLease();
    job.state = 'assigned';
    job.worker = worker.id;
    job.lease = lease;
    job.accepted = false;
    job.assignedAt = now;
    job.attempts += 1;
    job.failure = undefined;
    worker.running.push(job.id);
    // The worker will hold this hint's cache once the job has run there.
    this.noteHint(job.cacheHint, worker.id, now);
    return [
      { kind: 'persist-job', job },
      { kind: 'event', job },
      { kind: 'assign', job, worker, lease, affinity },
    ];
  }

  /** The job's current run is lost: queue it again, or fail it when it has used its attempts. */
  private loseLease(job: JobRecord, why: string, now: number): Effect[] {
    this.release(job);
    const lost = { worker: job.worker, lease: job.lease };
    job.worker = undefined;
    job.lease = undefined;
    if (job.cancelRequested) return this.finish(job, 'cancelled', `${job.cancelRequested} (and ${why})`, now, lost.worker);
    if (job.attempts >= this.config.maxAttempts) {
      return this.finish(job, 'failed', `gave up after ${job.attempts} lost runs; last: ${why}`, now, lost.worker);
    }
    job.state = 'queued';
    job.queuedAt = now;
    job.failure = `run ${job.attempts} lost: ${why}`;
    // Bounded: a job fails after maxAttempts lost runs, but refusals do not count.
    // The worker too: its chunks of this run are the run's log (log-writers.ts).
    job.requeues = [
      ...(job.requeues ?? []),
      { attempt: job.attempts, reason: why, at: now, ...(lost.worker === undefined ? {} : { worker: lost.worker }) },
    ].slice(-20);
    this.queue(job.pool).push(this.ref(job), true);
    return [
      { kind: 'persist-job', job },
      { kind: 'requeued', job, attempt: job.attempts, reason: why },
    ];
  }

  private finish(job: JobRecord, state: JobState, failure: string | undefined, now: number, lastWorker?: string): Effect[] {
    this.release(job);
    job.state = state;
    job.finishedAt = now;
    job.failure = failure;
    job.cancelRequested = undefined;
    if (lastWorker !== undefined) job.worker = lastWorker;
    this.finished.set(job.client, (this.finished.get(job.client) ?? 0) + 1);
    // Only jobs that ran have a result to store; a job cancelled while queued is an event.
    // A result is published before the terminal state is stored, and that one write
    // carries both (see the publish-result effect).
    if (job.attempts > 0)
      return [
        { kind: 'event', job },
        { kind: 'publish-result', job },
      ];
    return [
      { kind: 'persist-job', job },
      { kind: 'event', job },
    ];
  }

  private release(job: JobRecord): void {
    const worker = job.worker === undefined ? undefined : this.workers.get(job.worker);
    if (worker) worker.running = worker.running.filter((id) => id !== job.id);
  }

  // ---- admin ------------------------------------------------------------------------

  worker(id: string): WorkerRecord {
    const w = this.workers.get(id);
    if (!w) throw new SchedulerError('not-found', `no worker ${id}; known: ${[...this.workers.keys()].join(', ') || 'none'}`);
    return w;
  }

  setWorkerFlag(id: string, flag: 'paused' | 'draining', value: boolean): Effect[] {
    const w = this.worker(id);
    w[flag] = value;
    return [{ kind: 'persist-worker', worker: w }];
  }

  forgetWorker(id: string, now: number): Effect[] {
    const w = this.worker(id);
    const effects: Effect[] = [];
    for (const jobId of [...w.running]) {
      const job = this.jobs.get(jobId)!;
      effects.push({ kind: 'cancel', job, worker: w.id, lease: job.lease!, reason: 'worker forgotten' });
      effects.push(...this.loseLease(job, `worker ${id} was forgotten by an operator`, now));
    }
    this.workers.delete(id);
    this.affinity.forgetWorker(id);
    effects.push({ kind: 'forget-worker', worker: id });
    return effects;
  }

  setPoolPaused(pool: string, paused: boolean): Effect[] {
    if (!this.knownPool(pool)) throw new SchedulerError('not-found', `unknown pool "${pool}"; known pools: ${this.settings.pools.join(', ') || 'none'}`);
    this.settings.pausedPools = this.settings.pausedPools.filter((p) => p !== pool);
    if (paused) this.settings.pausedPools.push(pool);
    return [{ kind: 'persist-settings' }];
  }

  /**
   * Drains every worker of the pool registered now: each finishes what it runs and takes
   * nothing new (a worker that registers later is not drained). Unpausing the pool undoes it.
   */
  drainPool(pool: string): Effect[] {
    if (!this.knownPool(pool)) throw new SchedulerError('not-found', `unknown pool "${pool}"; known pools: ${this.settings.pools.join(', ') || 'none'}`);
    return [...this.workers.values()].filter((w) => w.pool === pool).flatMap((w) => this.setWorkerFlag(w.id, 'draining', true));
  }

  setRate(client: string, rate: number): Effect[] {
    this.settings.rates[client] = rate;
    return [{ kind: 'persist-settings' }];
  }

  rateOf(client: string): number {
    return this.settings.rates[client] ?? 1;
  }

  /** Each known pool: whether it is paused, its queued and running jobs, its connected workers. */
  pools(): { pool: string; paused: boolean; queued: number; running: number; workers: number }[] {
    const queued = this.queueLengths();
    return this.settings.pools.map((pool) => {
      const workers = [...this.workers.values()].filter((w) => w.pool === pool);
      return {
        pool,
        paused: this.settings.pausedPools.includes(pool),
        queued: queued.get(pool) ?? 0,
        running: workers.reduce((n, w) => n + w.running.length, 0),
        workers: workers.filter((w) => w.connected).length,
      };
    });
  }

  /** Queued jobs per pool. */
  queueLengths(): Map<string, number> {
    return new Map([...this.queues].map(([pool, queue]) => [pool, queue.length]));
  }

  /** Per pool with a queue: ms since its oldest queued job (re)entered it, 0 when it is empty. */
  oldestQueuedAges(now: number): Map<string, number> {
    const ages = new Map([...this.queues.keys()].map((pool) => [pool, 0]));
    for (const job of this.jobs.values()) {
      if (job.state === 'queued') ages.set(job.pool, Math.max(ages.get(job.pool) ?? 0, now - job.queuedAt));
    }
    return ages;
  }

  /** Queued jobs per pool and client, for the admin view. */
  queuedByClient(): { pool: string; client: string; urgent: number; normal: number }[] {
    return [...this.queues].flatMap(([pool, queue]) => [...queue.byClient()].map(([client, n]) => ({ pool, client, urgent: n.urgent, normal: n.normal })));
  }

  clients(): { client: string; rate: number; queued: number; running: number; finished: number }[] {
    const rows = new Map<string, { client: string; rate: number; queued: number; running: number; finished: number }>();
    const row = (client: string) => {
      let r = rows.get(client);
      if (!r) rows.set(client, (r = { client, rate: this.rateOf(client), queued: 0, running: 0, finished: this.finished.get(client) ?? 0 }));
      return r;
    };
    for (const job of this.jobs.values()) {
      if (job.state === 'queued') row(job.client).queued++;
      else if (job.state === 'assigned' || job.state === 'running') row(job.client).running++;
    }
    for (const client of [...Object.keys(this.settings.rates), ...this.finished.keys()]) row(client);
    return [...rows.values()].sort((a, b) => (a.client < b.client ? -1 : 1));
  }

  /** Terminal jobs older than `ageMs`, to drop from memory and the bucket. */
  expired(now: number, ageMs: number): string[] {
    const out: string[] = [];
    for (const job of this.jobs.values()) {
      if (TERMINAL.includes(job.state) && job.resultPublished !== false && (job.finishedAt ?? now) < now - ageMs) out.push(job.id);
    }
    for (const id of out) {
      const job = this.jobs.get(id)!;
      if (job.idempotencyKey !== undefined) this.byKey.delete(keyOf(job.client, job.idempotencyKey));
      this.jobs.delete(id);
    }
    return out;
  }

  queue(pool: string): FairQueue {
    let q = this.queues.get(pool);
    if (!q) this.queues.set(pool, (q = new FairQueue((client) => this.rateOf(client))));
    return q;
  }

  private ref(job: JobRecord) {
    return { job: job.id, client: job.client, urgent: job.urgent };
  }
}

const keyOf = (client: string, idempotencyKey: string) => `${client}\u0000${idempotencyKey}`;

function leastLoaded(workers: WorkerRecord[]): WorkerRecord {
  let best = workers[0]!;
  for (const w of workers) {
    const load = w.running.length / w.capacity;
    const bestLoad = best.running.length / best.capacity;
    if (load < bestLoad || (load === bestLoad && w.running.length < best.running.length)) best = w;
  }
  return best;
}
