/**
 * `cairn up`: the whole cluster on this machine as child processes — a nats-server with
 * JetStream of its own (on a free port, unless --nats names a server), the scheduler,
 * the spec-compiler, the worker-agents (on the machine's default store) and the
 * results-store (SQLite), a docker-registry (storage in the data dir) and the
 * base-image-builder publishing to it — so that `cairn submit` works with nothing else
 * installed. CAIRN_REGISTRY names another registry instead (none is started then).
 *
 * The children are supervised (supervisor.ts): one that exits unexpectedly is started
 * again, and every such event is logged and published in the `cairn-services` bucket
 * for `cairn admin services` and the dashboard. Stopping goes in order: the workers
 * drain (their builds finish, or are handed back to the queue when that takes too
 * long), then the results-store, then the scheduler, the spec-compiler and the
 * base-image-builder, NATS and the registry last, all within STOP_BOUND_MS. None of them outlives `cairn up`, even
 * when it is killed with SIGKILL: the services watch it (CAIRN_PARENT_PID,
 * libs/service-kit parent-watch.ts) and nats-server and the registry get a parent-death
 * signal (tiedCommand).
 */
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect as tcpConnect, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  buckets,
  busFromEnv,
  connectBus,
  makeNatsAuth,
  natsInbox,
  natsUsersProblem,
  openBucket,
  subjects,
  type NatsUser,
  type ServiceStatus,
} from '@cairn/contracts';
import { UserError } from '../cli-error.js';
import { UnavailableError } from './connection.js';
import { DEFAULT_POLICY, Supervisor, type ChildSpec, type SupervisionPolicy } from './supervisor.js';

export interface LocalClusterOptions {
  /** A NATS server to use (or, when nothing answers there and it is on this machine, to start); undefined: our own on a free port. */
  readonly nats?: string;
  readonly dataDir: string;
  readonly workers: number;
  /** The client IDs that may use the NATS server cairn up starts (each gets a user and a password file). */
  readonly clients: readonly string[];
  /** The workers' CAIRN_CACHE_DOMAINS: which clients share caches (by default, none). */
  readonly cacheDomains?: string;
  readonly capacity: number;
  readonly pool: string;
  /** 0: a free port. */
  readonly resultsPort: number;
  /** The services' own output, prefixed with their names. */
  readonly log: (line: string) => void;
  /** Supervision events: always worth a line. */
  readonly note: (line: string) => void;
  /** How long the workers may take to finish their builds when stopping. */
  readonly drainMs?: number;
  readonly policy?: SupervisionPolicy;
  /** false: no registry of its own (and no base-image-builder, unless CAIRN_REGISTRY names one). */
  readonly registry?: boolean;
}

/** Debian's docker-registry (distribution v2; tools/setup.sh installs it). */
const REGISTRY_SERVER = '/usr/bin/docker-registry';

/** The NATS users of a server cairn up starts itself, besides the workers and clients. */
const SERVICE_USER = 'cairn-service';
const ADMIN_USER = 'cairn-admin';
/**
 * Every password is 24 random bytes, which no guessing reaches whatever the hash costs;
 * nats-server checks the hash at every connect, so a cheap one keeps connects quick.
 */
const BCRYPT_COST = 6;

/** Where cairn up keeps its NATS users' clear passwords (one 0600 file per user, in a 0700 dir). */
const natsPasswordsDir = (dataDir: string) => join(dataDir, 'nats-passwords');

/** Everything stops within this, however long the builds would take. */
export const STOP_BOUND_MS = 30_000;
const DEFAULT_DRAIN_MS = 15_000;

/** apps/ of this checkout, from the bundle (apps/cli/dist/bundle) or the sources (apps/cli/src/cluster). */
function appsDir(): string {
  for (const up of ['../../../', '../../../../']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(join(dir, 'scheduler', 'package.json'))) return dir;
  }
  throw new UserError('cannot find the Cairn services next to the cairn command (run npm run build in the checkout)');
}

/**
 * How to start nats-server so that it dies with this process. nats-server is not ours,
 * so it cannot watch CAIRN_PARENT_PID like the services do; instead `setpriv --pdeathsig
 * SIGTERM` (util-linux) sets the kernel's parent-death signal (prctl PR_SET_PDEATHSIG)
 * and execs nats-server in its place. The kernel then sends SIGTERM the moment this
 * process ends, however it ends (SIGKILL and OOM included): no polling, no watchdog
 * process that could itself be killed, and the pid we hold is nats-server's own, so
 * stop() signals it directly. SIGTERM, not SIGKILL: nats-server then closes its
 * JetStream store cleanly. (The signal follows the thread that spawned the child; Node
 * spawns from its main thread, which lives as long as the process.)
 */
function tiedCommand(server: string, args: readonly string[]): { command: string; args: string[] } | undefined {
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  return setpriv === undefined ? undefined : { command: setpriv, args: ['--pdeathsig', 'SIGTERM', '--', server, ...args] };
}

const hostPort = (url: string) => {
  const { hostname, port } = new URL(url.replace(/^nats:/, 'http:'));
  return { hostname, port: Number(port || 4222) };
};

function listening(url: string): Promise<boolean> {
  const { hostname, port } = hostPort(url);
  return new Promise((resolve) => {
    const socket = tcpConnect(port, hostname, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Refuses a server without JetStream: Cairn's streams and buckets could not live there. */
async function checkJetStream(url: string): Promise<void> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connectBus({ ...busFromEnv('cairn-up-check', { ...process.env, CAIRN_NATS: url }), connectTimeoutMs: 5000, waitForServer: false });
  } catch (e) {
    throw new UnavailableError(`cannot connect to the NATS server at ${url}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    // JetStream's account info: a server without JetStream has no responder for it.
    const reply = (await nc.request('$JS.API.INFO', '', { timeout: 3000 })).json<{ error?: { description?: string } }>();
    if (reply.error) throw new Error(reply.error.description ?? 'JetStream is not enabled');
  } catch (e) {
    throw new UnavailableError(
      `the NATS server at ${url} has no JetStream (${e instanceof Error ? e.message : String(e)}): Cairn keeps its queue, logs and results there; start it with -js, or leave out --nats and cairn up starts its own`,
    );
  } finally {
    await nc.close();
  }
}

const workerId = (i: number, workers: number) => (workers === 1 ? 'local' : `local-${i}`);

/** The environment that makes a service connect as `user` (busFromEnv). */
function credentials(user: NatsUser, password: string): NodeJS.ProcessEnv {
  return { CAIRN_NATS_USER: user.name, CAIRN_NATS_PASSWORD: password, CAIRN_NATS_INBOX: natsInbox(user) ?? '' };
}

export class LocalCluster {
  readonly supervisor: Supervisor;
  /** Where the cluster's NATS listens, once started. */
  natsUrl = '';
  /** The passwords dir and admin user when cairn up runs its own (authenticated) NATS; undefined with someone else's. */
  natsAuth: { readonly passwordsDir: string; readonly admin: string } | undefined;
  /** Each user's env when cairn up runs its own NATS, by user name. */
  private readonly natsEnv = new Map<string, NodeJS.ProcessEnv>();
  /** The dashboard, once started. */
  dashboardUrl = '';
  /** The registry the base images are published to (CAIRN_REGISTRY, or the one started here); '' for none. */
  registryUrl = '';
  private bus: NatsConnection | undefined;
  private kv: Awaited<ReturnType<typeof openBucket>> | undefined;
  private cancelled = false;
  private wakeCancel: (() => void) | undefined;
  private readonly workerNames: string[] = [];
  private readonly serviceNames: string[] = [];
  private readonly health = new Map<string, string>();

  private constructor(private readonly options: LocalClusterOptions) {
    this.supervisor = new Supervisor(
      {
        output: (name, line) => options.log(`[${name}] ${line}`),
        event: (message, status) => {
          options.note(message);
          this.publish(status, message);
        },
      },
      options.policy ?? DEFAULT_POLICY,
    );
  }

  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const cluster = new LocalCluster(options);
    try {
      await cluster.startAll();
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  private async startAll(): Promise<void> {
    const { dataDir } = this.options;
    await mkdir(dataDir, { recursive: true });
    await this.startNats();
    const apps = appsDir();
    const node = process.execPath;
    // The services stop when this process is gone (libs/service-kit parent-watch.ts).
    const common = {
      ...process.env,
      CAIRN_NATS: this.natsUrl,
      CAIRN_LOG_FORMAT: 'text',
      CAIRN_PARENT_PID: String(process.pid),
      ...this.natsEnv.get(SERVICE_USER),
    };
    const service = async (name: string, script: string, env: NodeJS.ProcessEnv, port?: number) => {
      // A port of our choosing, so that readiness can be asked for (and is the same after a restart).
      const httpPort = port || (await freePort());
      const spec: ChildSpec = {
        name,
        command: node,
        args: [join(apps, script)],
        env: { ...common, ...env, CAIRN_HTTP_PORT: String(httpPort) },
        healthUrl: `http://127.0.0.1:${httpPort}/healthz`,
      };
      this.health.set(name, spec.healthUrl!);
      this.supervisor.start(spec);
      return httpPort;
    };
    await service('scheduler', 'scheduler/dist/main.js', { CAIRN_SCHEDULER_KEY: join(dataDir, 'scheduler-key.pem') });
    await service('spec-compiler', 'spec-compiler/dist/main.js', {});
    this.serviceNames.push('scheduler', 'spec-compiler');
    if (existsSync(join(apps, 'results-store/dist/main.js'))) {
      const port = await service('results-store', 'results-store/dist/main.js', { CAIRN_RESULTS_DIR: join(dataDir, 'results') }, this.options.resultsPort);
      this.dashboardUrl = `http://127.0.0.1:${port}/`;
      this.serviceNames.push('results-store');
    }
    // The base images are published to a registry (CAIRN_REGISTRY, else our own) and rebuilt by themselves.
    if (existsSync(join(apps, 'base-image-builder/dist/main.js')) && (await this.startRegistry())) {
      await service('base-image-builder', 'base-image-builder/dist/main.js', { CAIRN_REGISTRY: this.registryUrl });
      this.serviceNames.push('base-image-builder');
    }
    for (let i = 1; i <= this.options.workers; i++) {
      const name = `worker-${i}`;
      const id = workerId(i, this.options.workers);
      await service(name, 'worker-agent/dist/main.js', {
        ...this.natsEnv.get(id),
        CAIRN_WORKER_ID: id,
        CAIRN_POOL: this.options.pool,
        CAIRN_CAPACITY: String(this.options.capacity),
        ...(this.options.cacheDomains === undefined ? {} : { CAIRN_CACHE_DOMAINS: this.options.cacheDomains }),
      });
      this.workerNames.push(name);
    }
    void this.watchHealth();
  }

  /**
   * The registry: CAIRN_REGISTRY when set (someone else's; nothing started), else
   * docker-registry on 127.0.0.1 with its storage in <data>/registry, so the images stay
   * across restarts, on the port of the last start when it is still free (so a name like
   * 127.0.0.1:PORT/busybox:latest keeps working), else a free one. False: no registry.
   */
  private async startRegistry(): Promise<boolean> {
    const external = process.env.CAIRN_REGISTRY;
    if (external) {
      this.registryUrl = external;
      return true;
    }
    if (this.options.registry === false) return false;
    if (!existsSync(REGISTRY_SERVER)) {
      this.options.note(`${REGISTRY_SERVER} is not installed (apt-get install docker-registry): no registry, and no base-image-builder`);
      return false;
    }
    const dir = join(this.options.dataDir, 'registry');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const config = join(dir, 'config.yml');
    const before = /addr: 127\.0\.0\.1:(\d+)/.exec(await readFile(config, 'utf8').catch(() => ''))?.[1];
    const port = before !== undefined && !(await listening(`http://127.0.0.1:${before}`)) ? Number(before) : await freePort();
    await writeFile(
      config,
      [
        '# Written by cairn up at every start (edits are lost).',
        'version: 0.1',
        'log:',
        '  level: warn',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${join(dir, 'storage')}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        `  secret: ${randomBytes(16).toString('hex')}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    this.registryUrl = `http://127.0.0.1:${port}`;
    const args = ['serve', config];
    const tied = tiedCommand(REGISTRY_SERVER, args);
    const spec: ChildSpec = {
      name: 'registry',
      command: tied?.command ?? REGISTRY_SERVER,
      args: tied?.args ?? args,
      env: process.env,
      healthUrl: `${this.registryUrl}/v2/`,
    };
    this.health.set('registry', spec.healthUrl!);
    this.supervisor.start(spec);
    return true;
  }

  private async startNats(): Promise<void> {
    const wanted = this.options.nats;
    if (wanted !== undefined && (await listening(wanted))) {
      await checkJetStream(wanted);
      this.options.note(`using the NATS server at ${wanted}`);
      this.natsUrl = wanted;
    } else {
      if (wanted !== undefined && !['127.0.0.1', 'localhost', '[::1]', '::1'].includes(hostPort(wanted).hostname)) {
        throw new UnavailableError(`nothing answers at ${wanted}, and cairn up starts NATS only on this machine`);
      }
      const port = wanted === undefined ? await freePort() : hostPort(wanted).port;
      const hostname = wanted === undefined ? '127.0.0.1' : hostPort(wanted).hostname.replace(/^\[|\]$/g, '');
      this.natsUrl = wanted ?? `nats://127.0.0.1:${port}`;
      const server = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p));
      if (!server) throw new UserError('nats-server is not installed (apt-get install nats-server, or run tools/setup.sh)');
      const args = ['-c', await this.writeNatsConfig(), '-a', hostname, '-p', String(port), '-js', '-sd', join(this.options.dataDir, 'nats')];
      const tied = tiedCommand(server, args);
      if (!tied) this.options.note('setpriv (util-linux) is not installed: nats-server will outlive cairn up if cairn up is killed');
      this.supervisor.start({ name: 'nats', command: tied?.command ?? server, args: tied?.args ?? args, env: process.env });
      const deadline = Date.now() + 15_000;
      while (!(await listening(this.natsUrl))) {
        if (Date.now() > deadline) throw new UnavailableError(`nats-server did not start on ${this.natsUrl}`);
        await sleep(100);
      }
      this.health.set('nats', this.natsUrl);
    }
    // Our own connection, for the supervision records; it follows NATS across restarts.
    this.bus = await connectBus(busFromEnv('cairn-up', { ...process.env, CAIRN_NATS: this.natsUrl, ...this.natsEnv.get(SERVICE_USER) }));
    try {
      this.kv = await openBucket(this.bus, buckets.services);
      // Entries of processes that are not ours (an earlier `cairn up` with more workers).
      for await (const key of await this.kv.keys())
        if (!['nats', 'registry', 'scheduler', 'spec-compiler', 'results-store', 'base-image-builder'].includes(key) && !/^worker-\d+$/.test(key))
          await this.kv.delete(key);
      for (const status of this.supervisor.statuses()) this.publish(status);
    } catch (e) {
      this.options.note(`cannot keep the supervision records in NATS: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /**
   * The config of the NATS server cairn up starts: a user per service role, worker and
   * client, so that nothing else on this machine (another user, a build step on the host
   * network) can read the logs, call the admin subjects or forge results. The passwords
   * are kept in the data dir and reused, so that whatever holds one keeps working after a
   * restart (a CI job given a client's password; a CLI following a log, when --nats
   * fixes the address).
   */
  private async writeNatsConfig(): Promise<string> {
    const { dataDir, workers, clients } = this.options;
    const users: NatsUser[] = [
      { role: 'service', name: SERVICE_USER },
      { role: 'admin', name: ADMIN_USER },
      ...Array.from({ length: workers }, (_, i) => ({ role: 'worker' as const, name: workerId(i + 1, workers) })),
      ...[...new Set(clients)].map((name) => ({ role: 'client' as const, name })),
    ];
    const problem = natsUsersProblem(users);
    if (problem)
      throw new UserError(`the NATS users of cairn up: ${problem} (${SERVICE_USER}, ${ADMIN_USER} and the worker IDs local, local-N cannot be client IDs)`);
    const passwordsDir = natsPasswordsDir(dataDir);
    const auth = await makeNatsAuth({ users, passwordsDir, cost: BCRYPT_COST, writer: 'cairn up at every start (edits are lost)' });
    for (const user of users) this.natsEnv.set(user.name, credentials(user, auth.passwords.get(user.name)!));
    const dir = join(dataDir, 'nats');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, 'auth.conf');
    await writeFile(file, auth.config, { mode: 0o600 });
    await chmod(file, 0o600);
    this.natsAuth = { passwordsDir, admin: ADMIN_USER };
    return file;
  }

  private publish(status: ServiceStatus, message?: string): void {
    const bus = this.bus;
    if (!bus || bus.isClosed()) return;
    const body = JSON.stringify(status);
    if (message !== undefined)
      bus.publish(subjects.serviceEvent(status.name), JSON.stringify({ name: status.name, message, at: Date.now(), state: status.state }));
    void this.kv?.put(status.name, body).catch(() => undefined);
  }

  /** Marks each service ready when its /healthz answers 200, after a start or a restart. */
  private async watchHealth(): Promise<void> {
    for (;;) {
      let pending = 0;
      for (const [name, url] of this.health) {
        const status = this.supervisor.statuses().find((s) => s.name === name);
        if (status?.state !== 'running') continue;
        pending++;
        if (await healthy(url)) this.supervisor.markReady(name);
      }
      if (this.stopping) return;
      await sleep(pending > 0 ? 250 : 1000);
    }
  }

  /** Resolves once every service reports ready; rejects after `timeoutMs` naming those that do not. */
  async ready(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waiting = this.supervisor.statuses().filter((s) => s.state !== 'ready');
      if (waiting.length === 0) return;
      if (Date.now() > deadline)
        throw new UnavailableError(`not ready within ${timeoutMs / 1000} s: ${waiting.map((s) => `${s.name} (${s.state})`).join(', ')}`);
      await sleep(200);
    }
  }

  /** The second Ctrl-C: the workers cancel their builds now, and the rest stops with short bounds. */
  cancelNow(): void {
    this.cancelled = true;
    for (const name of this.workerNames) this.supervisor.signal(name, 'SIGTERM');
    this.wakeCancel?.();
  }

  private stopping = false;

  /**
   * In order, within STOP_BOUND_MS: the workers take no new jobs and finish what runs
   * (up to the drain time; then they hand their builds back to the queue), then the
   * results-store, then the scheduler, spec-compiler and base-image-builder, then NATS
   * and the registry. Each phase that
   * overruns its share is killed (the whole process group) so the next can go.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const deadline = Date.now() + STOP_BOUND_MS - 1000;
    // Shares of what is left for the phases after the workers.
    const reserve = { results: 3000, services: 4000, nats: 3000 };
    const left = (keep: number) => Math.max(0, deadline - Date.now() - keep);
    const phase = async (names: string[], boundMs: number) => {
      await Promise.all(
        names.map(async (name) => {
          if (!(await this.supervisor.stop(name, 'SIGTERM', boundMs))) await this.supervisor.kill(name);
        }),
      );
    };

    // 1. The workers drain: no new jobs; running builds finish and report.
    const workers = this.workerNames;
    const after = reserve.results + reserve.services + reserve.nats;
    const drainMs = Math.min(this.options.drainMs ?? DEFAULT_DRAIN_MS, left(after + 4000));
    const cancelled = new Promise<void>((r) => (this.wakeCancel = r));
    await Promise.all(
      workers.map(async (name) => {
        const drainStarted = this.supervisor.stop(name, 'SIGTERM', drainMs);
        if (this.cancelled) this.supervisor.signal(name, 'SIGTERM');
        const inTime = await Promise.race([drainStarted, cancelled.then(() => this.supervisor.waitExit(name, 3000))]);
        if (inTime) return;
        if (!this.cancelled) {
          // Too long: the builds go back to the queue (to run after the next start).
          this.options.note(`${name} still building after ${Math.round(drainMs / 1000)} s: handing its builds back to the queue`);
          this.supervisor.signal(name, 'SIGUSR2');
          if (await this.supervisor.waitExit(name, Math.min(4000, left(after)))) return;
        }
        await this.supervisor.kill(name);
      }),
    );
    // 2. The results-store takes in the last results; 3. the scheduler stores its last writes.
    const results = this.serviceNames.filter((n) => n === 'results-store');
    await phase(results, this.cancelled ? 1500 : Math.min(reserve.results, left(reserve.services + reserve.nats)));
    await phase(
      this.serviceNames.filter((n) => n !== 'results-store'),
      this.cancelled ? 2000 : Math.max(1000, left(reserve.nats)),
    );
    // 4. NATS and the registry, once nothing needs them.
    await this.bus?.close().catch(() => undefined);
    await phase(
      ['nats', 'registry'].filter((n) => this.supervisor.names.includes(n)),
      Math.max(1000, left(0)),
    );
  }
}

async function healthy(url: string): Promise<boolean> {
  if (url.startsWith('nats:')) return listening(url);
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}
