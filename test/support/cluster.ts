/**
 * A whole Cairn cluster on this machine for end-to-end tests: a private nats-server,
 * the scheduler, the spec-compiler and N worker-agents as real processes (built code,
 * as deployed), each worker with its own btrfs store, all fetching base images from one
 * OCI layout so that the digest the compiler pins is the one the workers find.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import { call, connectBus, subjects, type WorkerInfo } from '@cairn/contracts';
import { withBtrfs, type TestFilesystem } from './filesystems.js';
import { busyboxImage } from './images.js';
import { startNats, type RunningNats } from './nats.js';
import { stopChild } from './processes.js';

const run = promisify(execFile);
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BASE_IMAGE = 'cairn/busybox:latest';
export const POOL = 'linux-x86_64';

/**
 * The environment of a `cairn up` under test and of the CLI beside it: only PATH and HOME
 * from this process, the cluster file in `dir`/home, builds on `store` from the OCI
 * layout in `dir`/images.
 */
export function upEnv(dir: string, store: string, secretKey: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CAIRN_HOME: join(dir, 'home'),
    CAIRN_STORE: store,
    CAIRN_FETCHER: `oci:${join(dir, 'images')}`,
    CAIRN_CONFIG: join(dir, 'cairn.json'),
    CAIRN_SECRET_KEY: secretKey,
  };
}

export interface ServiceProcess {
  readonly name: string;
  child: ChildProcess;
  output: string;
  readonly env: NodeJS.ProcessEnv;
  readonly script: string;
  /** The test stopped it: an exit is expected, and no restart follows. */
  stopped?: boolean;
}

/**
 * A scheduler that could not renew its leadership in time (a NATS restart on a loaded
 * machine) steps down and exits with this status for its supervisor to start it again as
 * a standby (apps/scheduler/src/leadership.ts); `cairn up`, compose and Kubernetes all
 * do, and so does this cluster.
 */
const STEPPED_DOWN = 75;

export interface Cluster {
  readonly nats: RunningNats;
  /** A connection with every right, for the test to look into streams and buckets. */
  readonly nc: NatsConnection;
  readonly dir: string;
  /** CAIRN_NATS_USER/PASSWORD for `name` when the cluster runs with permissions, else {}. */
  credentials(name: string): NodeJS.ProcessEnv;
  readonly scheduler: ServiceProcess;
  readonly compiler: ServiceProcess;
  readonly workers: ServiceProcess[];
  /** Runs the built `cairn` command against the cluster. */
  /** Runs `cairn`; `interruptWhen` sends it SIGINT (Ctrl-C) once its output matches. */
  cli(
    args: readonly string[],
    options?: { client?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; interruptWhen?: RegExp },
  ): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Ends a process (SIGKILL for kill -9) and waits for it. */
  stopProcess(p: ServiceProcess, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped service process again with the same settings. */
  restartProcess(p: ServiceProcess): Promise<void>;
  /** Starts another process of `p`'s kind (a standby scheduler), with extra env; stopped with the cluster. */
  spawnLike(p: ServiceProcess, name: string, env: NodeJS.ProcessEnv): ServiceProcess;
  waitForWorkers(ids: readonly string[], connected?: boolean): Promise<WorkerInfo[]>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /**
   * Run NATS with the users and permissions tools/nats-config.mjs generates for these
   * clients (plus the workers, an admin `ops` and the services `svc`), each process
   * connecting as its own user; without it NATS has no authorization.
   */
  readonly clients?: readonly string[];
  readonly workers?: number;
  readonly capacity?: number;
  readonly schedulerEnv?: NodeJS.ProcessEnv;
  readonly workerEnv?: NodeJS.ProcessEnv;
}

function spawnService(name: string, script: string, env: NodeJS.ProcessEnv): ServiceProcess {
  const p: ServiceProcess = { name, script, env, output: '', child: undefined as unknown as ChildProcess };
  startChild(p);
  return p;
}

function startChild(p: ServiceProcess): void {
  p.stopped = false;
  const child = spawn(process.execPath, [join(ROOT, p.script)], { env: p.env, stdio: ['ignore', 'pipe', 'pipe'] });
  p.child = child;
  const keep = (d: Buffer) => {
    p.output = (p.output + d.toString()).slice(-200_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  // 'close', not 'exit': its output is read to the end by then, the error that ended it too.
  child.on('close', (code, signal) => {
    if (p.stopped || p.child !== child) return;
    if (code === STEPPED_DOWN) {
      keep(Buffer.from(`[test cluster] ${p.name} stepped down (exit ${code}); starting it again\n`));
      setTimeout(() => !p.stopped && p.child === child && startChild(p), 250);
      return;
    }
    // Nobody asked it to stop: say why here, where a failing test's log will show it.
    process.stderr.write(`[test cluster] ${p.name} exited unexpectedly (${signal ?? `exit ${code}`}); its last output:\n${p.output.slice(-4000)}\n`);
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, describe: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s\n${describe()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-cluster-'));
  const workerCount = options.workers ?? 2;
  const passwords = join(dir, 'nats-passwords');
  let config: string | undefined;
  if (options.clients) {
    const users = [
      ...options.clients.flatMap((c) => ['--client', c]),
      ...Array.from({ length: workerCount }, (_, i) => ['--worker', `w${i + 1}`]).flat(),
      '--admin',
      'ops',
      '--service',
      'svc',
    ];
    await run(process.execPath, ['tools/nats-config.mjs', ...users, '--out', join(dir, 'nats.conf'), '--passwords-dir', passwords], { cwd: ROOT });
    config = await readFile(join(dir, 'nats.conf'), 'utf8');
  }
  const credentials = async (name: string): Promise<NodeJS.ProcessEnv> =>
    config === undefined
      ? {}
      : {
          CAIRN_NATS_USER: name,
          CAIRN_NATS_PASSWORD: (await readFile(join(passwords, `${name}.password`), 'utf8')).trim(),
          ...(name === 'svc' ? {} : { CAIRN_NATS_INBOX: `_INBOX_${name}` }),
        };
  const nats = await startNats(config === undefined ? {} : { config });
  const images = join(dir, 'images');
  await busyboxImage(images, BASE_IMAGE);
  const base: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CAIRN_NATS: nats.url,
    CAIRN_LOG_FORMAT: 'text',
    CAIRN_HTTP_PORT: '0',
    CAIRN_FETCHER: `oci:${images}`,
    CAIRN_CONFIG: join(dir, 'none.json'),
  };
  const svc = await credentials('svc');
  const scheduler = spawnService('scheduler', 'apps/scheduler/dist/main.js', {
    ...base,
    ...svc,
    CAIRN_SCHEDULER_KEY: join(dir, 'scheduler-key.pem'),
    CAIRN_LEASE_TTL_MS: '3000',
    CAIRN_HEARTBEAT_MS: '300',
    CAIRN_AFFINITY_WAIT_MS: '1500',
    ...options.schedulerEnv,
  });
  const compiler = spawnService('spec-compiler', 'apps/spec-compiler/dist/main.js', { ...base, ...svc });
  const filesystems: TestFilesystem[] = [];
  const workers: ServiceProcess[] = [];
  for (let i = 1; i <= workerCount; i++) {
    const fs = await withBtrfs({ sizeMb: 512 });
    filesystems.push(fs);
    const config = join(dir, `w${i}.json`);
    await writeFile(config, JSON.stringify({ stateDir: join(dir, `w${i}-state`) }));
    workers.push(
      spawnService(`w${i}`, 'apps/worker-agent/dist/main.js', {
        ...base,
        ...(await credentials(`w${i}`)),
        CAIRN_WORKER_ID: `w${i}`,
        CAIRN_POOL: POOL,
        CAIRN_PLATFORM: POOL,
        CAIRN_CAPACITY: String(options.capacity ?? 2),
        CAIRN_STORE: `btrfs:${fs.path}`,
        CAIRN_CONFIG: config,
        CAIRN_SECRET_KEY: 'cluster-test-key',
        CAIRN_CALL_TIMEOUT_MS: '1000',
        ...options.workerEnv,
      }),
    );
  }
  const nc = await connectBus({ servers: nats.url, name: 'e2e-test', ...(config === undefined ? {} : { user: 'svc', pass: String(svc.CAIRN_NATS_PASSWORD) }) });
  const clientCredentials = new Map<string, NodeJS.ProcessEnv>();
  for (const name of [...(options.clients ?? []), 'ops']) clientCredentials.set(name, await credentials(name));
  const extras: ServiceProcess[] = [];
  const everything = () =>
    [scheduler, compiler, ...workers, ...extras].map((p) => `--- ${p.name} (exit ${p.child.exitCode})\n${p.output.slice(-3000)}`).join('\n');
  const cluster: Cluster = {
    nats,
    nc,
    dir,
    credentials: (name) => clientCredentials.get(name) ?? {},
    scheduler,
    compiler,
    workers,
    cli: (args, opts = {}) =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [join(ROOT, 'apps/cli/bin/cairn.js'), ...args], {
          env: { ...base, CAIRN_CLIENT: opts.client ?? 'alice', ...(clientCredentials.get(opts.client ?? 'alice') ?? {}), ...opts.env },
          stdio: ['ignore', 'pipe', 'pipe'],
          cwd: ROOT,
        });
        let stdout = '';
        let stderr = '';
        let interrupted = false;
        const watch = () => {
          if (!interrupted && opts.interruptWhen?.test(stdout + stderr)) {
            interrupted = true;
            child.kill('SIGINT');
          }
        };
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          watch();
        });
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          watch();
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      }),
    stopProcess: (p, signal = 'SIGTERM') => {
      p.stopped = true;
      return stopChild(p.child, signal, 30_000);
    },
    async restartProcess(p) {
      // Already started again (a stepped-down scheduler, by the rule above): one is enough.
      if (p.child.exitCode === null && p.child.signalCode === null && !p.stopped) return;
      startChild(p);
    },
    spawnLike(p, name, env) {
      const extra = spawnService(name, p.script, { ...p.env, ...env });
      extras.push(extra);
      return extra;
    },
    waitForWorkers: (ids, connected = true) =>
      until(
        `workers ${ids.join(', ')} ${connected ? 'connected' : 'disconnected'}`,
        async () => {
          const reply = await call<WorkerInfo[]>(nc, subjects.admin('workers'), {}, { timeoutMs: 1000 });
          if (!reply.ok) return undefined;
          const ok = ids.every((id) => reply.value.some((w) => w.worker === id && w.connected === connected));
          return ok ? reply.value : undefined;
        },
        60_000,
        everything,
      ),
    async stop() {
      await nc.close().catch(() => undefined);
      await Promise.all([scheduler, compiler, ...workers, ...extras].map((p) => cluster.stopProcess(p)));
      await nats.stop();
      for (const fs of filesystems) await fs.cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await until(
      'the spec-compiler answering',
      async () => ((await call(nc, subjects.compile, { spec: `((from ${BASE_IMAGE}))` }, { timeoutMs: 1000 })).ok ? true : undefined),
      60_000,
      everything,
    );
    await cluster.waitForWorkers(workers.map((w) => w.name));
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}
