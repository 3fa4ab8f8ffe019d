import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { BuildError, type Builder, type StepEvent } from '@cairn/builder';
import { attempts, call, subjects, type Assignment, type CacheDomains, type Complete, type Outcome, type StepResult } from '@cairn/contracts';
import { parseSpec, SpecError } from '@cairn/spec';
import { ArtifactError, exportArtifacts } from './artifacts.js';
import { ContextError, fetchContext } from './context-fetch.js';
import { LogPublisher } from './log-publisher.js';
import type { AgentMetrics } from './metrics.js';
import { Redactor } from './redactor.js';

/** What every job on this worker shares. */
export interface JobEnvironment {
  readonly nc: NatsConnection;
  readonly builder: Builder;
  readonly worker: string;
  readonly platform: string;
  readonly metrics: AgentMetrics;
  readonly callTimeoutMs: number;
  /** Job scratch and log spools go here. */
  readonly scratchDir: string;
  /** The trust domain of each client's caches. */
  readonly cacheDomains: CacheDomains;
  readonly logLimits: { readonly memoryBytes: number; readonly spoolBytes: number };
  /** A warning; `fields` (a job's `job` and `client`) go on the line as fields of their own. */
  readonly log: (message: string, fields?: Readonly<Record<string, string>>) => void;
  /** Aborted when the agent is torn down without draining: stop retrying, give up. */
  readonly teardown: AbortSignal;
}

type FinalState = Outcome['state'];

/**
 * One job on this worker, from acceptance to its answered `complete`: fetch and check
 * the context, build with the shared Builder while the log streams out, export the
 * outputs, report the outcome until the scheduler answers, then end the log. Every
 * failure becomes an outcome that names what failed; nothing escapes as an exception.
 */
export class JobRunner {
  /** Resolves when the outcome was answered and the log ended. */
  readonly done: Promise<void>;
  private readonly controller = new AbortController();
  private stopReason: { state: 'cancelled' | 'failed'; why: string } | undefined;
  private succeededHint: string | undefined;
  private buildEnded = false;
  private released: string | undefined;
  /** How the run ended, once it has: its final state, or handed back to the queue. */
  endedAs: FinalState | 'handed back' | undefined;
  /** A warning about this job, with its job and client fields (the worker's come from the service, its trace from the run). */
  private readonly warn = (message: string) => this.env.log(message, { job: this.assignment.job, client: this.assignment.client });

  constructor(
    readonly assignment: Assignment,
    private readonly secrets: ReadonlyMap<string, Uint8Array>,
    private readonly env: JobEnvironment,
  ) {
    this.done = this.run();
  }

  get lease(): string {
    return this.assignment.lease;
  }

  /** The cache hint of a job that succeeded, once it has. */
  get hint(): string | undefined {
    return this.succeededHint;
  }

  /**
   * Whether the build still holds a slot. It frees the slot before the outcome is
   * reported: a scheduler that assigns the next job on hearing the outcome must find room.
   */
  get building(): boolean {
    return !this.buildEnded;
  }

  cancel(reason: string): void {
    this.stopReason ??= { state: 'cancelled', why: reason };
    this.controller.abort();
  }

  /**
   * Stops the build without an outcome: the run is handed back to the scheduler (the
   * worker's next heartbeat no longer lists it) and the job runs again elsewhere. For a
   * worker that must stop before its builds end; a cancelled build would end the job.
   */
  release(reason: string): void {
    if (this.buildEnded || this.stopReason) return;
    this.released = reason;
    this.stopReason = { state: 'cancelled', why: reason };
    this.controller.abort();
  }

  private async run(): Promise<void> {
    const a = this.assignment;
    const redactor = new Redactor(this.secrets.values());
    const run = { client: a.client, job: a.job, worker: this.env.worker, lease: a.lease, attempt: a.attempt };
    const logs = new LogPublisher(this.env.nc, run, redactor, {
      warn: this.warn,
      memoryLimit: this.env.logLimits.memoryBytes,
      spoolLimit: this.env.logLimits.spoolBytes,
      spoolDir: this.env.scratchDir,
    });
    const onTeardown = () => logs.abandon();
    this.env.teardown.addEventListener('abort', onTeardown, { once: true });
    const startedAt = Date.now();
    const steps: StepResult[] = [];
    const timer = setTimeout(() => {
      this.stopReason ??= { state: 'failed', why: `timed out after ${a.timeoutSeconds} s` };
      this.controller.abort();
    }, a.timeoutSeconds * 1000);
    void this.reportStarted();
    let outcome: Omit<Outcome, 'platform' | 'startedAt' | 'finishedAt'>;
    try {
      outcome = await this.build(logs, (s) => {
        logs.stepDone(s);
        steps.push({ stage: s.stage, op: s.op, id: s.id, cached: s.cached, ms: s.ms });
        this.env.metrics.steps.inc({ cached: String(s.cached) });
      });
    } finally {
      clearTimeout(timer);
      this.buildEnded = true;
    }
    if (this.released !== undefined && outcome.state !== 'succeeded') {
      logs.line(`cairn: run ${a.attempt} of job ${a.job} stopped on worker ${this.env.worker}: ${this.released}; it goes back to the queue`);
      this.endedAs = 'handed back';
      await logs.close();
      this.env.teardown.removeEventListener('abort', onTeardown);
      return;
    }
    const failure = outcome.failure === undefined ? undefined : redactor.redact(outcome.failure).slice(0, 8192);
    if (failure !== undefined) logs.line(`cairn: job ${a.job} ${outcome.state}: ${failure}`);
    await logs.close();
    const full: Outcome = { ...outcome, ...(failure === undefined ? {} : { failure }), steps, platform: this.env.platform, startedAt, finishedAt: Date.now() };
    this.env.metrics.builds.inc({ outcome: full.state });
    if (full.state === 'succeeded') this.succeededHint = a.cacheHint;
    this.endedAs = full.state;
    await this.reportComplete(full);
    await logs.end(full.state);
    this.env.teardown.removeEventListener('abort', onTeardown);
  }

  private async build(logs: LogPublisher, onStep: (s: StepEvent) => void): Promise<Omit<Outcome, 'platform' | 'startedAt' | 'finishedAt'>> {
    const a = this.assignment;
    const signal = this.controller.signal;
    const ended = (state: FinalState, failure: string, snapshotId?: string) => ({
      state,
      failure,
      artifacts: [],
      steps: [],
      ...(snapshotId === undefined ? {} : { snapshotId }),
    });
    let snapshotId: string | undefined;
    // The context and the downloaded tar live here, and go with the job.
    let scratch: string | undefined;
    try {
      const spec = parseSpec(a.spec, 'spec');
      scratch = await mkdtemp(join(this.env.scratchDir, `cairn-job-${a.job}-`));
      let contextDir: string | undefined;
      if (a.contextDigest !== undefined) {
        contextDir = join(scratch, 'context');
        await fetchContext(this.env.nc, { store: 'contexts', owner: a.client, sha256: a.contextDigest.replace(/^sha256:/, '') }, contextDir, scratch);
      }
      signal.throwIfAborted();
      snapshotId = await this.env.builder.build(spec, {
        ...(contextDir === undefined ? {} : { contextDir }),
        secrets: this.secrets,
        log: logs.log,
        onStep,
        signal,
        cacheDomain: this.env.cacheDomains.of(a.client),
        // The job's; the worker's sandbox caps them by its own.
        ...(a.limits === undefined ? {} : { limits: a.limits }),
        ...(a.stepTimeoutMs === undefined ? {} : { stepTimeoutMs: a.stepTimeoutMs }),
      });
      const artifacts = await exportArtifacts(this.env.builder.store, snapshotId, a.outputs, this.env.nc, this.env.worker);
      return { state: 'succeeded', artifacts, steps: [], snapshotId };
    } catch (e) {
      if (signal.aborted && this.stopReason) return ended(this.stopReason.state, this.stopReason.why, snapshotId);
      if (e instanceof BuildError || e instanceof ContextError || e instanceof ArtifactError) return ended('failed', e.message, snapshotId);
      if (e instanceof SpecError) return ended('failed', `invalid spec: ${e.message}`);
      // A bug or an environment problem (disk, runtime): still an outcome, never a lost job.
      this.warn(`job ${a.job}: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      return ended('failed', `worker ${this.env.worker}: ${e instanceof Error ? e.message : String(e)}`, snapshotId);
    } finally {
      if (scratch !== undefined) await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private async reportStarted(): Promise<void> {
    const a = this.assignment;
    const reply = await call(
      this.env.nc,
      subjects.toScheduler(this.env.worker, 'started'),
      { job: a.job, lease: a.lease, worker: this.env.worker },
      { timeoutMs: this.env.callTimeoutMs, retries: 3 },
    );
    if (reply.ok) return;
    this.warn(`job ${a.job}: started not recorded: ${reply.error.code}: ${reply.error.message}`);
    // The scheduler gave the job to someone else (a stale lease) or forgot it: building it
    // here would only take capacity from jobs that are wanted.
    if (reply.error.code === 'conflict' || reply.error.code === 'not-found') this.cancel(`the scheduler refused this lease: ${reply.error.message}`);
  }

  /**
   * The outcome goes to the scheduler until it answers: it may be restarting, or NATS
   * may be. Any answer ends it, including a rejection (a stale lease: the job was given
   * to another worker meanwhile), which is logged.
   */
  private async reportComplete(outcome: Outcome): Promise<void> {
    const a = this.assignment;
    const message: Complete = { job: a.job, lease: a.lease, worker: this.env.worker, outcome };
    const subject = subjects.toScheduler(this.env.worker, 'complete');
    for await (const attempt of attempts({ signal: this.env.teardown })) {
      const reply = await call<unknown>(this.env.nc, subject, message, { timeoutMs: this.env.callTimeoutMs });
      if (reply.ok) return;
      if (reply.error.code !== 'unavailable') {
        this.warn(`job ${a.job}: outcome ${outcome.state} rejected by the scheduler: ${reply.error.code}: ${reply.error.message}`);
        return;
      }
      if (attempt % 5 === 4) this.warn(`job ${a.job}: outcome not answered after ${attempt + 1} attempts, still trying: ${reply.error.message}`);
    }
  }
}
