/**
 * Shared pieces of the scheduler benchmarks (bench/scheduler-*.ts): a private
 * nats-server, the real scheduler service as its own process, simulated workers that
 * speak the real worker protocol (register, heartbeat, answer assignments, started,
 * complete) without building anything, a job submitter on `subjects.enqueue` (what the
 * spec-compiler forwards), and the bus baselines (raw request/reply, KV put).
 *
 * Not a benchmark by itself.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  answer,
  buckets,
  call,
  callOrThrow,
  connectBus,
  generateKeyPair,
  ok,
  subjects,
  type Assignment,
  type AssignmentBatch,
  type JobSubmission,
} from '@cairn/contracts';
import { startNats, type RunningNats } from '../test/support/nats.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const POOL = 'bench-linux';

// ---- small statistics ------------------------------------------------------------------

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summary(values: readonly number[]): { n: number; p50: number; p99: number; max: number; mean: number } {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN, mean: s.reduce((a, b) => a + b, 0) / (s.length || 1) };
}

export const fmtMs = (v: number) => (v < 10 ? `${v.toFixed(2)} ms` : `${v.toFixed(1)} ms`);
export const fmtRate = (v: number) => `${Math.round(v).toLocaleString('en-US')}/s`;
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Prints a Markdown table (as it would go into bench/RESULTS.md). */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): void {
  console.log(`| ${header.join(' | ')} |`);
  console.log(`| ${header.map(() => '---').join(' | ')} |`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

// ---- the cluster under test -------------------------------------------------------------

export interface Env {
  nats: RunningNats;
  natsPid: number;
  scheduler: SchedulerProcess;
  /** The load generator's own connections (this process). */
  client: NatsConnection;
  workerBus: NatsConnection;
  cleanup(): Promise<void>;
}

export interface SchedulerProcess {
  readonly pid: number;
  /** Stops the process; with a CPU profile, waits for it to be written and returns its path. */
  stop(): Promise<string | undefined>;
  metrics(): Promise<string>;
}

/** Write system calls a process has made so far (each a socket write for the scheduler), from /proc. */
export function writeCalls(pid: number): number {
  try {
    return Number(/^syscw: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/**
 * Another revision's scheduler, to measure against in the same run: its apps/scheduler
 * extracted under tmp/ (which git ignores) and compiled there against this tree's
 * libraries (node_modules/@cairn/*). Returns the path of its main.js.
 */
export function baselineScheduler(rev: string): string {
  const commit = execFileSync('git', ['rev-parse', '--short', `${rev}^{commit}`], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dir = join(ROOT, 'tmp', 'bench-scheduler', commit);
  const main = join(dir, 'apps/scheduler/dist/main.js');
  if (existsSync(main)) return main;
  mkdirSync(dir, { recursive: true });
  const archive = execFileSync('git', ['archive', commit, 'apps/scheduler/src', 'apps/scheduler/package.json', 'tsconfig.base.json'], {
    cwd: ROOT,
    maxBuffer: 1 << 28,
  });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  // Its own tsconfig without the project references (the libraries are this tree's, built).
  const tsconfig = {
    extends: join(dir, 'tsconfig.base.json'),
    compilerOptions: {
      rootDir: 'src',
      outDir: 'dist',
      composite: false,
      declaration: false,
      declarationMap: false,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
    },
    include: ['src/**/*.ts'],
  };
  writeFileSync(join(dir, 'apps/scheduler/tsconfig.json'), JSON.stringify(tsconfig));
  const r = spawnSync('npx', ['tsc', '-p', join(dir, 'apps/scheduler/tsconfig.json')], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`building the scheduler of ${rev} failed`);
  return main;
}

/** `tsc -b` of the scheduler (quick when up to date), so the benchmark runs the current source. */
export function buildScheduler(): void {
  const r = spawnSync('npx', ['tsc', '-b', 'apps/scheduler'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('building the scheduler failed');
}

/** `main`: the scheduler's main.js (default: this tree's, apps/scheduler/dist). */
export async function startScheduler(
  natsUrl: string,
  dir: string,
  options: { env?: Record<string, string>; cpuProf?: string; main?: string } = {},
): Promise<SchedulerProcess> {
  const nodeArgs: string[] = [];
  if (options.cpuProf !== undefined) {
    // --cpu-prof writes its file on a normal exit; Nest re-raises SIGTERM, so exit on SIGUSR2 instead.
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProf}`, '--import', 'data:text/javascript,process.on("SIGUSR2",()=>process.exit(0))');
  }
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, options.main ?? join(ROOT, 'apps/scheduler/dist/main.js')], {
    cwd: ROOT,
    env: {
      ...process.env,
      CAIRN_NATS: natsUrl,
      CAIRN_SCHEDULER_KEY: join(dir, 'scheduler-key.pem'),
      CAIRN_HTTP_PORT: '0',
      CAIRN_LOG_FORMAT: 'text',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let httpUrl = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      const line = output.split('\n').find((l) => l.includes('"ready":true'));
      if (line) {
        httpUrl = (JSON.parse(line) as { http: string }).http;
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => reject(new Error(`scheduler exited (${code}) before it was ready:\n${output}`)));
    setTimeout(() => reject(new Error(`scheduler not ready in 30 s:\n${output}`)), 30_000);
  });
  await ready;
  // Keep reading so a full pipe never blocks the scheduler; keep only warnings and errors.
  child.stdout!.removeAllListeners('data');
  child.stdout!.on('data', (d: Buffer) => {
    const text = d.toString();
    if (/WARN|ERROR/.test(text)) process.stderr.write(`[scheduler] ${text}`);
  });
  return {
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null) return undefined;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill(options.cpuProf !== undefined ? 'SIGUSR2' : 'SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
      if (options.cpuProf === undefined) return undefined;
      const file = readdirSync(options.cpuProf).find((f) => f.endsWith('.cpuprofile'));
      return file === undefined ? undefined : join(options.cpuProf, file);
    },
    async metrics() {
      return (await fetch(`${httpUrl}/metrics`)).text();
    },
  };
}

export async function startEnv(options: { schedulerEnv?: Record<string, string>; cpuProf?: string; schedulerMain?: string } = {}): Promise<Env> {
  const nats = await startNats();
  const natsPid = Number(
    spawnSync('pgrep', ['-f', `nats-server -a 127.0.0.1 -p ${nats.port} `])
      .stdout.toString()
      .trim()
      .split('\n')[0],
  );
  const dir = await mkdtemp(join(tmpdir(), 'cairn-bench-sched-'));
  const scheduler = await startScheduler(nats.url, dir, {
    ...(options.schedulerEnv ? { env: options.schedulerEnv } : {}),
    ...(options.cpuProf ? { cpuProf: options.cpuProf } : {}),
    ...(options.schedulerMain ? { main: options.schedulerMain } : {}),
  });
  const client = await connectBus({ servers: nats.url, name: 'bench-client' });
  const workerBus = await connectBus({ servers: nats.url, name: 'bench-workers' });
  return {
    nats,
    natsPid,
    scheduler,
    client,
    workerBus,
    async cleanup() {
      // A drain can wait forever on the simulated workers' requests to a scheduler that is
      // gone; the bench is over by now, so each gets a few seconds.
      const bounded = (p: Promise<unknown>) => Promise.race([p.catch(() => undefined), sleep(3000)]);
      await bounded(client.drain());
      await bounded(workerBus.drain());
      await scheduler.stop().catch(() => undefined);
      await nats.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Stream sequence of the scheduler's job bucket: the number of job-record writes so far. */
export async function jobWrites(nc: NatsConnection): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(`KV_${buckets.jobs}`)).state.last_seq;
}

// ---- simulated workers ---------------------------------------------------------------------

export interface RunInfo {
  readonly worker: SimWorker;
  readonly assignment: Assignment;
  /** performance.now() when the assignment arrived. */
  readonly at: number;
  /** The worker had completed a job with this hint before (see `realHint`). */
  readonly hit: boolean;
}

export interface SimOptions {
  readonly count: number;
  readonly capacity: number;
  readonly prefix?: string;
  /** How long a job "runs" (ms); 0 = complete at once. */
  readonly duration?: (a: Assignment) => number;
  /** The hint the job really has (for hit counting when the scheduler was shown another). */
  readonly realHint?: (a: Assignment) => string;
  readonly onAssign?: (run: RunInfo) => void;
  readonly onComplete?: (run: RunInfo) => void;
  /** Send `started` before `complete`, as the worker-agent does (default true). */
  readonly sendStarted?: boolean;
}

const sharedKey = generateKeyPair().publicKey;

export class SimWorker {
  readonly running = new Map<string, string>(); // job -> lease
  readonly built = new Set<string>();
  /** Assignment messages received (one may carry several assignments). */
  messages = 0;
  private sub?: Subscription;
  private batchSub?: Subscription;
  private beat?: NodeJS.Timeout;

  constructor(
    private readonly nc: NatsConnection,
    readonly id: string,
    private readonly capacity: number,
    private readonly options: SimOptions,
  ) {}

  async register(): Promise<number> {
    const take = (a: Assignment, at: number) => {
      this.running.set(a.job, a.lease);
      const hint = this.options.realHint ? this.options.realHint(a) : a.cacheHint;
      const run: RunInfo = { worker: this, assignment: a, at, hit: this.built.has(hint) };
      this.options.onAssign?.(run);
      setImmediate(() => void this.run(run, hint));
      return { accepted: true };
    };
    this.sub ??= this.nc.subscribe(subjects.toWorker(this.id, 'assign'), {
      callback: (_e, msg) => {
        const at = performance.now();
        this.messages++;
        void answer(msg, (data) => ok(take(data as Assignment, at)));
      },
    });
    // A baseline scheduler from before batches never sends on this subject.
    this.batchSub ??= this.nc.subscribe(subjects.toWorker(this.id, 'assign-batch'), {
      callback: (_e, msg) => {
        const at = performance.now();
        this.messages++;
        void answer(msg, (data) => ok({ answers: (data as AssignmentBatch).assignments.map((a) => take(a, at)) }));
      },
    });
    this.nc.subscribe(subjects.toWorker(this.id, 'cancel'), { callback: (_e, msg) => void answer(msg, () => ok({ cancelled: true })) });
    const registered = await callOrThrow<{ heartbeatMs: number }>(
      this.nc,
      subjects.toScheduler(this.id, 'register'),
      {
        worker: this.id,
        pool: POOL,
        platform: 'linux-x86_64',
        capacity: this.capacity,
        store: { kind: 'sim', freeBytes: 1e12, totalBytes: 2e12 },
        publicKey: sharedKey,
      },
      { timeoutMs: 10_000, retries: 3 },
    );
    return registered.heartbeatMs;
  }

  startHeartbeats(everyMs: number): void {
    const send = async () => {
      const reply = await call<{ known: boolean; cancel: string[] }>(
        this.nc,
        subjects.toScheduler(this.id, 'heartbeat'),
        { worker: this.id, running: [...this.running].map(([job, lease]) => ({ job, lease })), freeBytes: 1e12 },
        { timeoutMs: 10_000 },
      );
      if (reply.ok) for (const job of reply.value.cancel) this.running.delete(job);
    };
    // Staggered, so 200 workers do not beat in lockstep.
    setTimeout(() => {
      void send();
      this.beat = setInterval(() => void send(), everyMs);
    }, Math.random() * everyMs);
  }

  stop(): void {
    clearInterval(this.beat);
    this.sub?.unsubscribe();
    this.batchSub?.unsubscribe();
  }

  private async run(run: RunInfo, hint: string): Promise<void> {
    const a = run.assignment;
    const lease = { worker: this.id, job: a.job, lease: a.lease };
    const startedAt = Date.now();
    if (this.options.sendStarted !== false) await call(this.nc, subjects.toScheduler(this.id, 'started'), lease, { timeoutMs: 30_000, retries: 3 });
    const ms = this.options.duration?.(a) ?? 0;
    if (ms > 0) await sleep(ms);
    const outcome = { state: 'succeeded', steps: [], artifacts: [], platform: 'linux-x86_64', startedAt, finishedAt: Date.now() };
    await call(this.nc, subjects.toScheduler(this.id, 'complete'), { ...lease, outcome }, { timeoutMs: 30_000, retries: 3 });
    this.running.delete(a.job);
    this.built.add(hint);
    this.options.onComplete?.(run);
  }
}

/** Registers `count` simulated workers (a few at a time) and starts their heartbeats. */
export async function startWorkers(nc: NatsConnection, options: SimOptions): Promise<SimWorker[]> {
  const workers = Array.from(
    { length: options.count },
    (_, i) => new SimWorker(nc, `${options.prefix ?? 'w'}${String(i).padStart(3, '0')}`, options.capacity, options),
  );
  let heartbeatMs = 2000;
  for (let i = 0; i < workers.length; i += 20) heartbeatMs = (await Promise.all(workers.slice(i, i + 20).map((w) => w.register())))[0]!;
  for (const w of workers) w.startHeartbeats(heartbeatMs);
  return workers;
}

// ---- jobs ------------------------------------------------------------------------------

export function submission(name: string, over: Partial<JobSubmission> = {}): JobSubmission {
  return {
    client: 'bench',
    pool: POOL,
    name,
    spec: '((from busybox) (run (shell "true")))',
    urgent: false,
    secrets: [],
    outputs: [],
    timeoutSeconds: 3600,
    cacheHint: '',
    steps: 2,
    ...over,
  };
}

/** Submits one job on `subjects.enqueue`; resolves to the job ID (throws on a rejection). */
export async function enqueue(nc: NatsConnection, job: JobSubmission): Promise<string> {
  const reply = await call<{ job: string }>(nc, subjects.enqueue, job, { timeoutMs: 60_000 });
  if (!reply.ok) throw new Error(`enqueue rejected: ${reply.error.code}: ${reply.error.message}`);
  return reply.value.job;
}

/** Submits jobs with at most `inFlight` requests outstanding; resolves to the elapsed ms. */
export async function enqueueAll(nc: NatsConnection, jobs: readonly JobSubmission[], inFlight = 100): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < jobs.length) await enqueue(nc, jobs[next++]!);
    }),
  );
  return performance.now() - t0;
}

export async function admin(nc: NatsConnection, verb: Parameters<typeof subjects.admin>[0], data: unknown): Promise<unknown> {
  return callOrThrow(nc, subjects.admin(verb), data, { timeoutMs: 10_000 });
}

/** Resolves when `done()` holds, polling; rejects after `timeoutMs`. */
export async function until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// ---- bus baselines ---------------------------------------------------------------------

/**
 * A trivial responder in its own process (as the scheduler is): answers every request on
 * `bench.echo` in the Nest envelope with `answer()`, as a worker answers an assignment.
 */
export async function startResponder(natsUrl: string): Promise<{ stop(): Promise<void> }> {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--responder', natsUrl], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`responder exited ${code}`)));
  });
  return {
    async stop() {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

if (process.argv[2] === '--responder') {
  const nc = await connectBus({ servers: process.argv[3]!, name: 'bench-responder' });
  nc.subscribe('bench.echo', { callback: (_e, msg) => void answer(msg, () => ok({ accepted: true })) });
  await nc.flush();
  process.on('SIGTERM', () => void nc.close().then(() => process.exit(0)));
  console.log('ready');
}

/** Closed loop: `inFlight` callers for `ms`; returns operations per second. */
export async function maxRate(op: () => Promise<unknown>, inFlight: number, ms: number): Promise<number> {
  let n = 0;
  const end = performance.now() + ms;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        await op();
        n++;
      }
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

/** Open loop: starts `op` at `rate`/s for `ms` (ticks of 1 ms, catching up); returns each op's latency. */
export async function latencyAt(op: () => Promise<unknown>, rate: number, ms: number): Promise<number[]> {
  const out: number[] = [];
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  let sent = 0;
  while (performance.now() - t0 < ms) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    while (sent < due) {
      sent++;
      const s = performance.now();
      pending.push(op().then(() => void out.push(performance.now() - s)));
    }
    await sleep(1);
  }
  await Promise.all(pending);
  return out;
}

/** Request/reply and KV-put figures of the bus itself, measured now. */
export interface Baseline {
  /** Request/reply to the trivial responder: max rate, latency at the offered rate. */
  rrRate: number;
  rr: ReturnType<typeof summary>;
  /** KV put of a job-sized record. */
  kvRate: number;
  kv: ReturnType<typeof summary>;
  /** The least a durable assignment costs on this bus: a KV put, then a request/reply, chained. */
  floorRate: number;
  floor: ReturnType<typeof summary>;
}

export async function busBaseline(env: Env, options: { rate: number; seconds: number }): Promise<Baseline> {
  const responder = await startResponder(env.nats.url);
  try {
    const echo = () => call(env.client, 'bench.echo', { job: 'x' }, { timeoutMs: 10_000 });
    await maxRate(echo, 50, 500); // warm
    const rrRate = await maxRate(echo, 200, options.seconds * 1000);
    const rr = summary(await latencyAt(echo, options.rate, options.seconds * 1000));
    const kvStore = await new Kvm(env.client).create('bench-baseline', { history: 1, storage: StorageType.File });
    const record = JSON.stringify(submission('baseline-record-of-a-typical-size'));
    let i = 0;
    const put = () => kvStore.put(`k${i++ % 5000}`, record);
    const kvRate = await maxRate(put, 200, options.seconds * 1000);
    const kv = summary(await latencyAt(put, options.rate, options.seconds * 1000));
    const chained = async () => {
      await put();
      await echo();
    };
    const floorRate = await maxRate(chained, 200, options.seconds * 1000);
    const floor = summary(await latencyAt(chained, options.rate, options.seconds * 1000));
    await kvStore.destroy();
    return { rrRate, rr, kvRate, kv, floorRate, floor };
  } finally {
    await responder.stop();
  }
}

/** Self time per function in a .cpuprofile, top `n`, as percentages of all samples. */
export function profileTop(file: string, n = 25): { fn: string; pct: number }[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id)!;
    const url = node.callFrame.url.replace(/^file:\/\/.*node_modules\//, '').replace(`file://${ROOT}`, '');
    const key = `${node.callFrame.functionName || '(anonymous)'} ${url}:${node.callFrame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, t]) => ({ fn, pct: (100 * t) / total }));
}

/** Self time grouped by package (or "scheduler", "contracts", "(program)", "(garbage collector)"). */
export function profileByPackage(file: string): { pkg: string; pct: number }[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string } }[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const groups = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const { url, functionName } = byId.get(id)!.callFrame;
    let pkg: string;
    if (!url) pkg = functionName.startsWith('(') ? functionName : '(native)';
    else if (url.includes('node_modules/')) {
      const rest = url.slice(url.lastIndexOf('node_modules/') + 13).split('/');
      pkg = rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
    } else if (url.startsWith('node:')) pkg = 'node (core)';
    else if (url.includes('/apps/scheduler/')) pkg = 'apps/scheduler';
    else if (url.includes('/libs/')) pkg = url.replace(/.*\/libs\/([^/]+)\/.*/, 'libs/$1');
    else pkg = url;
    groups.set(pkg, (groups.get(pkg) ?? 0) + dt);
    total += dt;
  });
  return [...groups.entries()].sort((a, b) => b[1] - a[1]).map(([pkg, t]) => ({ pkg, pct: (100 * t) / total }));
}
