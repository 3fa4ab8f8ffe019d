import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface RunningDockerd {
  readonly socketPath: string;
  /** Runs the docker CLI against this daemon; resolves to its stdout. */
  docker(args: readonly string[]): Promise<string>;
  /** `docker import` of `rootfsDir` (archived with numeric owners) as `ref`. */
  importRootfs(rootfsDir: string, ref: string, changes: readonly string[]): Promise<void>;
  stop(): Promise<void>;
}

const run = promisify(execFile);

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Unmounts whatever the daemon left mounted under `dir` (deepest first), then deletes it. */
async function removeTree(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) await run('umount', ['-l', point]).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}

/**
 * Starts a private dockerd (no iptables, no bridge) with its data, exec root, pid file and
 * socket in a temp directory, and waits until it answers. `stop` ends it with SIGTERM
 * (SIGKILL after 20 s) and deletes everything it kept. It never reaches a registry:
 * images come from `importRootfs`.
 */
export async function startDockerd(): Promise<RunningDockerd> {
  if (!existsSync('/usr/sbin/dockerd')) throw new Error('dockerd is missing: apt-get install docker.io (tools/setup.sh does)');
  const dir = await mkdtemp(join(tmpdir(), 'cairn-dockerd-'));
  await mkdir(join(dir, 'data'));
  await mkdir(join(dir, 'exec'));
  const socketPath = join(dir, 'docker.sock');
  const host = `unix://${socketPath}`;
  const args = ['--iptables=false', '--bridge=none', '-H', host];
  args.push('--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'dockerd.pid'));
  const daemon = spawn('dockerd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-20_000)));

  const stop = async () => {
    daemon.kill('SIGTERM');
    const timer = setTimeout(() => daemon.kill('SIGKILL'), 20_000);
    await exited(daemon);
    clearTimeout(timer);
    await removeTree(dir);
  };
  const docker = async (args: readonly string[]) => (await run('docker', ['-H', host, ...args])).stdout;

  const deadline = Date.now() + 60_000;
  for (;;) {
    const ready = await docker(['version', '--format', '{{.Server.Version}}']).then(
      () => true,
      () => false,
    );
    if (ready) break;
    if (daemon.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`dockerd did not start:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  const importRootfs = async (rootfsDir: string, ref: string, changes: readonly string[]) => {
    const tar = spawn('tar', ['--numeric-owner', '-C', rootfsDir, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const importer = spawn('docker', ['-H', host, 'import', ...changes.flatMap((c) => ['--change', c]), '-', ref], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let errors = '';
    importer.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    tar.stdout?.pipe(importer.stdin as NodeJS.WritableStream);
    await Promise.all([exited(tar), exited(importer)]);
    if (tar.exitCode !== 0 || importer.exitCode !== 0) throw new Error(`docker import of ${rootfsDir} failed:\n${errors}`);
  };

  return { socketPath, docker, importRootfs, stop };
}
