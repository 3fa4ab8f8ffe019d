/**
 * `cairn up`: the whole cluster on this machine as child processes — a nats-server
 * with JetStream (unless one already answers), the scheduler, the spec-compiler, the
 * worker-agents (on the machine's default store) and the results-store (SQLite) — so
 * that `cairn submit` works with nothing else installed. Stopping it drains the workers
 * first, so no running build is lost. None of them outlives `cairn up`, even when it is
 * killed with SIGKILL: the services watch it (CAIRN_PARENT_PID, libs/service-kit
 * parent-watch.ts) and nats-server gets a parent-death signal (natsCommand).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../cli-error.js';

export interface LocalClusterOptions {
  readonly natsUrl: string;
  readonly dataDir: string;
  readonly workers: number;
  readonly capacity: number;
  readonly pool: string;
  readonly resultsPort: number;
  readonly log: (line: string) => void;
}

interface Child {
  readonly name: string;
  readonly process: ChildProcess;
}

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
function natsCommand(server: string, args: readonly string[]): { command: string; args: string[] } | undefined {
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  return setpriv === undefined ? undefined : { command: setpriv, args: ['--pdeathsig', 'SIGTERM', '--', server, ...args] };
}

function listening(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url.replace(/^nats:/, 'http:'));
  return new Promise((resolve) => {
    const socket = tcpConnect(Number(port || 4222), hostname, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export class LocalCluster {
  private readonly children: Child[] = [];

  private constructor(private readonly options: LocalClusterOptions) {}

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

  private spawn(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): void {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const prefix = (data: Buffer) => {
      for (const line of data.toString().split('\n')) if (line.trim()) this.options.log(`[${name}] ${line}`);
    };
    child.stdout?.on('data', prefix);
    child.stderr?.on('data', prefix);
    child.on('exit', (code, signal) => this.options.log(`[${name}] exited (${signal ?? code})`));
    this.children.push({ name, process: child });
  }

  private async startAll(): Promise<void> {
    const { natsUrl, dataDir } = this.options;
    await mkdir(dataDir, { recursive: true });
    if (!(await listening(natsUrl))) {
      const { hostname, port } = new URL(natsUrl.replace(/^nats:/, 'http:'));
      const server = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p));
      if (!server) throw new UserError('nats-server is not installed (apt-get install nats-server, or run tools/setup.sh)');
      const args = ['-a', hostname, '-p', port || '4222', '-js', '-sd', join(dataDir, 'nats')];
      const tied = natsCommand(server, args);
      if (!tied) this.options.log('setpriv (util-linux) is not installed: nats-server will outlive cairn up if cairn up is killed');
      this.spawn('nats', tied?.command ?? server, tied?.args ?? args, {});
      const deadline = Date.now() + 15_000;
      while (!(await listening(natsUrl))) {
        if (Date.now() > deadline) throw new UserError(`nats-server did not start on ${natsUrl}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } else {
      this.options.log(`using the NATS server already at ${natsUrl}`);
    }
    const apps = appsDir();
    const node = process.execPath;
    // The services stop when this process is gone (libs/service-kit parent-watch.ts).
    const common = { CAIRN_NATS: natsUrl, CAIRN_LOG_FORMAT: 'text', CAIRN_PARENT_PID: String(process.pid) };
    this.spawn('scheduler', node, [join(apps, 'scheduler/dist/main.js')], { ...common, CAIRN_SCHEDULER_KEY: join(dataDir, 'scheduler-key.pem'), CAIRN_HTTP_PORT: '0' });
    this.spawn('spec-compiler', node, [join(apps, 'spec-compiler/dist/main.js')], { ...common, CAIRN_HTTP_PORT: '0' });
    if (existsSync(join(apps, 'results-store/dist/main.js'))) {
      this.spawn('results-store', node, [join(apps, 'results-store/dist/main.js')], {
        ...common,
        CAIRN_HTTP_PORT: String(this.options.resultsPort),
        CAIRN_RESULTS_DIR: join(dataDir, 'results'),
      });
    }
    for (let i = 1; i <= this.options.workers; i++) {
      this.spawn(`worker-${i}`, node, [join(apps, 'worker-agent/dist/main.js')], {
        ...common,
        CAIRN_WORKER_ID: this.options.workers === 1 ? 'local' : `local-${i}`,
        CAIRN_POOL: this.options.pool,
        CAIRN_CAPACITY: String(this.options.capacity),
        CAIRN_HTTP_PORT: '0',
      });
    }
  }

  /** Workers first (they finish their builds), then the services, then NATS. */
  async stop(): Promise<void> {
    const order = [
      this.children.filter((c) => c.name.startsWith('worker-')),
      this.children.filter((c) => !c.name.startsWith('worker-') && c.name !== 'nats'),
      this.children.filter((c) => c.name === 'nats'),
    ];
    for (const group of order) {
      await Promise.all(
        group.map(async ({ process: child }) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = new Promise<void>((r) => child.once('exit', () => r()));
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
          await exited;
          clearTimeout(timer);
        }),
      );
    }
  }

  /** Resolves when any child exits on its own (the cluster is then incomplete). */
  exited(): Promise<string> {
    return Promise.race(this.children.map((c) => new Promise<string>((r) => c.process.once('exit', (code, signal) => r(`${c.name} exited (${signal ?? code})`)))));
  }
}
