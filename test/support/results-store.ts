/**
 * The results-store under test, and the cluster side of its contract played by the
 * test: job events, log chunks, artifacts in the object store and results on the
 * results stream, published exactly as the scheduler and the workers publish them.
 * Also a PostgreSQL database per test file and a headless Chromium.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  answer,
  ensureJetStream,
  ok,
  putBlob,
  subjects,
  type Artifact,
  type BuildResult,
  type JobEvent,
  type JobState,
  type JobStatus,
  type LogChunk,
  type LogStep,
  type WorkerInfo,
} from '@cairn/contracts';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { chromium, type Browser } from 'playwright-core';
// Type-only at the top: the service's code (Nest decorators) is loaded on demand, so that
// scripts run by plain tsx (the benchmarks) can use the process and bus helpers here.
import type { DataSource } from 'typeorm';
import type { ResultsConfig, RunningResultsStore } from '../../apps/results-store/src/index.js';
import { freePort } from './ports.js';
import { stopChild } from './processes.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// ---- databases --------------------------------------------------------------------------

export type DatabaseFlavour = 'sqlite' | 'postgres';
export const FLAVOURS: readonly DatabaseFlavour[] = ['sqlite', 'postgres'];

export interface TestDatabase {
  /** SQLite path or PostgreSQL URL, as CAIRN_RESULTS_DB takes it. */
  readonly location: string;
  drop(): Promise<void>;
}

const PG = { host: process.env.PGHOST ?? '127.0.0.1', port: Number(process.env.PGPORT ?? 5432), user: process.env.PGUSER ?? 'postgres', database: 'postgres' };

/** A fresh, empty PostgreSQL database (`cairn_rs_<random>`), dropped by `drop`. */
export async function createPostgresDatabase(): Promise<TestDatabase> {
  const name = `cairn_rs_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client(PG);
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return {
    location: `postgres://${PG.user}@${PG.host}:${PG.port}/${name}`,
    async drop() {
      const c = new pg.Client(PG);
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export async function createDatabase(flavour: DatabaseFlavour, dir: string): Promise<TestDatabase> {
  if (flavour === 'postgres') return createPostgresDatabase();
  return { location: join(dir, 'results.sqlite'), drop: async () => undefined };
}

/** A fresh database of a flavour, migrated and open, and a temp dir for what a test keeps beside it. */
export interface OpenTestDatabase {
  readonly dir: string;
  readonly db: TestDatabase;
  readonly ds: DataSource;
  /** Closes the connection, drops the database and removes the dir. */
  close(): Promise<void>;
}

/** `prefix`: the temp dir's name before its random part (`cairn-rs-pages-`). */
export async function openTestDatabase(flavour: DatabaseFlavour, prefix: string): Promise<OpenTestDatabase> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const db = await createDatabase(flavour, dir);
  // Loaded here, so that the tests that only start a store do not load TypeORM for it.
  const { openDatabase } = await import('../../apps/results-store/src/db/data-source.js');
  const ds = await openDatabase(db.location);
  return {
    dir,
    db,
    ds,
    async close() {
      await ds.destroy();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---- the service ------------------------------------------------------------------------

export interface ResultsStoreUnderTest {
  readonly url: string;
  readonly store: RunningResultsStore;
  readonly dataDir: string;
  readonly database: TestDatabase;
  close(): Promise<void>;
}

export interface ResultsStoreTestOptions {
  readonly natsUrl: string;
  readonly database?: DatabaseFlavour;
  readonly config?: Partial<ResultsConfig>;
  readonly env?: Record<string, string>;
}

/** The results-store in this process, on a temp directory and a fresh database. */
export async function startResultsStore(options: ResultsStoreTestOptions): Promise<ResultsStoreUnderTest> {
  const dataDir = await mkdtemp(join(tmpdir(), 'cairn-results-'));
  const database = await createDatabase(options.database ?? 'sqlite', dataDir);
  const { startResultsStore: start } = await import('../../apps/results-store/src/index.js');
  const store = await start({
    env: { CAIRN_NATS: options.natsUrl, CAIRN_LOG_FORMAT: 'text', CAIRN_RESULTS_DIR: dataDir, CAIRN_RESULTS_DB: database.location, ...options.env },
    ...(options.config ? { config: options.config } : {}),
  });
  return {
    url: store.httpUrl,
    store,
    dataDir,
    database,
    async close() {
      await store.close();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ResultsStoreProcess {
  readonly url: string;
  readonly child: ChildProcess;
  output(): string;
  /** Stops it (SIGTERM, then SIGKILL after 10 s). */
  stop(): Promise<void>;
}

/**
 * The results-store as its own process (`main.ts serve`, run by tsx from the sources),
 * for tests that kill it. `env` must give CAIRN_RESULTS_DIR and CAIRN_RESULTS_DB, and may give CAIRN_HTTP_PORT.
 * `sources` is a tree holding another version's apps/results-store (a benchmark's
 * baseline), inside the repository so that it finds the same node_modules.
 */
export async function spawnResultsStore(env: Record<string, string>, options: { nodeArgs?: string[]; sources?: string } = {}): Promise<ResultsStoreProcess> {
  // A test that restarts the service keeps its port (CAIRN_HTTP_PORT), so that pages reconnect.
  const port = env['CAIRN_HTTP_PORT'] ? Number(env['CAIRN_HTTP_PORT']) : await freePort();
  const app = join(options.sources ?? ROOT, 'apps/results-store');
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx/esm', join(app, 'src/main.ts'), 'serve'], {
    cwd: ROOT,
    env: { ...process.env, TSX_TSCONFIG_PATH: join(app, 'tsconfig.json'), CAIRN_LOG_FORMAT: 'text', CAIRN_HTTP_PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`results-store exited with ${child.exitCode}: ${output}`);
    const up = await fetch(`${url}/healthz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`results-store did not become healthy on ${url} within 60 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    child,
    output: () => output,
    stop: () => stopChild(child),
  };
}

// ---- the cluster side of the contract ---------------------------------------------------

export function newJobId(): string {
  return `j-${randomBytes(8)
    .toString('hex')
    .replace(/[^0-9a-z]/g, '')}`;
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function sampleResult(overrides: Partial<BuildResult> = {}): BuildResult {
  const now = Date.now();
  return {
    job: newJobId(),
    name: 'hello',
    client: 'alice',
    pool: 'linux-x86_64',
    platform: 'linux/amd64',
    worker: 'w1',
    spec: '((from busybox)\n (run (shell "echo hello > /hello")))',
    cacheHint: 'hint-1',
    state: 'succeeded',
    steps: [
      { stage: '', op: '(from busybox)', id: 'a'.repeat(64), cached: true, ms: 3 },
      { stage: '', op: '(run (shell "echo hello > /hello"))', id: 'b'.repeat(64), cached: false, ms: 120 },
    ],
    snapshotId: 'b'.repeat(64),
    artifacts: [],
    attempts: 1,
    submittedAt: now - 5000,
    startedAt: now - 4000,
    finishedAt: now - 1000,
    ...overrides,
  };
}

/**
 * Publishes what the scheduler and the workers publish, as they publish it, and answers
 * `status` for the jobs it logged as the scheduler does: which worker ran each run.
 */
/** A step's start as a worker puts it in the log; `heading` is the line that follows it. */
export const stepStarted = (heading: string, stage = ''): LogStep => ({ t: 'started', heading, stage });
/** The end of the step `stage` started last. */
export const stepFinished = (cached: boolean, id = 'a'.repeat(64), stage = '', ms = 1500): LogStep => ({ t: 'finished', stage, id, cached, ms });

export class ClusterStandIn {
  private readonly js;
  private seq = new Map<string, number>();
  private streams: Promise<void> | undefined;
  /** Job -> attempt -> the worker that ran it (the first to log it here). */
  private readonly runs = new Map<string, { client: string; workers: Map<number, string> }>();

  constructor(private readonly nc: NatsConnection) {
    this.js = jetstream(nc);
    // Only jobs logged here are answered: another stand-in on the bus may know the rest.
    nc.subscribe(subjects.clientPattern('status'), {
      callback: (_e, m) => {
        const job = m.json<{ data?: { job?: string } }>().data?.job ?? '';
        const status = this.statusOf(job);
        if (status) void answer(m, () => ok(status));
      },
    });
  }

  private statusOf(job: string): JobStatus | undefined {
    const runs = this.runs.get(job);
    if (!runs) return undefined;
    const attempts = Math.max(...runs.workers.keys());
    const requeues = [...runs.workers].filter(([a]) => a < attempts).map(([attempt, worker]) => ({ attempt, worker, reason: 'lost', at: 0 }));
    return {
      job,
      name: job,
      client: runs.client,
      pool: 'linux-x86_64',
      state: 'running',
      urgent: false,
      cacheHint: '',
      attempts,
      worker: runs.workers.get(attempts)!,
      submittedAt: 0,
      requeues,
    };
  }

  event(job: { job: string; name: string; client: string; pool: string }, state: JobState, extra: Partial<JobEvent> = {}): void {
    const event: JobEvent = { job: job.job, name: job.name, client: job.client, pool: job.pool, state, at: Date.now(), ...extra };
    this.nc.publish(subjects.jobEvent(job.pool, state), JSON.stringify(event));
  }

  /**
   * The next chunk of a job's log (seq counted here, from 1 again for a new attempt), as
   * `worker` publishes it; the first worker to log an attempt is the one that ran it.
   * A LogStep is a step boundary's chunk (`stepStarted`, `stepFinished`).
   */
  async log(client: string, job: string, text: string | LogStep, end?: LogChunk['end'], attempt = 1, worker = 'w1'): Promise<void> {
    const runs = this.runs.get(job) ?? { client, workers: new Map<number, string>() };
    this.runs.set(job, runs);
    if (!runs.workers.has(attempt)) runs.workers.set(attempt, worker);
    const key = `${job}/${attempt}/${worker}`;
    const seq = (this.seq.get(key) ?? 0) + 1;
    this.seq.set(key, seq);
    const content = typeof text === 'string' ? { text } : { text: '', step: text };
    const chunk: LogChunk = { job, seq, attempt, ...content, ...(end ? { end } : {}) };
    await this.js.publish(subjects.log(client, job, worker), JSON.stringify(chunk));
  }

  /** Uploads bytes as worker `worker`'s artifact (sampleResult's worker by default), as a worker does; returns the result's entry for them. */
  async artifact(path: string, bytes: Uint8Array, worker = 'w1'): Promise<Artifact> {
    // Uploads may come before any service has started and made the streams.
    this.streams ??= ensureJetStream(this.nc);
    await this.streams;
    const { sha256 } = await putBlob(this.nc, 'artifacts', worker, [bytes]);
    return { path, size: bytes.length, sha256 };
  }

  async result(result: BuildResult, msgId: string | undefined = result.job): Promise<void> {
    await this.js.publish(subjects.result(result.pool), JSON.stringify(result), msgId === undefined ? {} : { msgID: msgId });
  }
}

export interface SchedulerAnswers {
  pools?: unknown[];
  workers?: unknown[];
  queues?: unknown[];
  /** Jobs queued or running (`admin.jobs`), as ActiveJob. */
  jobs?: unknown[];
}

/** A connected, idle worker as the scheduler's admin.workers answers it: `w1` of linux-x86_64 with room for 4 jobs, unless `overrides` say otherwise. */
export function workerInfo(overrides: Partial<WorkerInfo> = {}): WorkerInfo {
  return {
    worker: 'w1',
    pool: 'linux-x86_64',
    platform: 'linux/amd64',
    capacity: 4,
    running: [],
    paused: false,
    draining: false,
    connected: true,
    refusing: false,
    freeBytes: 5e10,
    hints: 17,
    lastSeen: Date.now(),
    ...overrides,
  };
}

/**
 * The test's stand-in for the scheduler's admin requests (pools, workers, queues, jobs),
 * answering in the request/reply envelope `call` speaks. Returns a stop function.
 */
export function schedulerStandIn(nc: NatsConnection, answers: SchedulerAnswers): () => void {
  const subs = (['pools', 'workers', 'queues', 'jobs'] as const).map((verb) => {
    const sub = nc.subscribe(subjects.admin(verb));
    void (async () => {
      for await (const m of sub) await answer(m, () => ok(answers[verb] ?? []));
    })();
    return sub;
  });
  return () => subs.forEach((s) => s.unsubscribe());
}

// ---- the browser ------------------------------------------------------------------------

export const CHROMIUM = process.env.CAIRN_CHROMIUM ?? '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Builds an upload body in the format of apps/results-store/src/ingest/upload-format.ts. */
export function uploadBody(manifest: unknown, blobs: readonly Uint8Array[]): Buffer {
  return Buffer.concat([Buffer.from(`${JSON.stringify(manifest)}\n`), ...blobs.map((b) => Buffer.from(b))]);
}
