import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerInfo } from '@cairn/contracts';
import { upEnv } from '../../../test/support/cluster.js';
import { withBtrfs, type TestFilesystem } from '../../../test/support/filesystems.js';
import { busyboxImage } from '../../../test/support/images.js';
import { freePort } from '../../../test/support/ports.js';

const REPO = join(import.meta.dirname, '../../..');

interface Proc {
  readonly pid: number;
  readonly command: string;
}

/** The processes whose parent is `parent`, from /proc. */
async function childrenOf(parent: number): Promise<Proc[]> {
  const found: Proc[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      found.push({ pid: Number(entry), command: (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ').trim() });
    } catch {
      // it ended while we looked
    }
  }
  return found;
}

/** Whether `pid` still runs; a zombie has ended and only waits for init to reap it. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return false;
  }
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${detail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `cairn up` with every child it starts, and what happens when it is killed outright. */
describe('cairn up killed with SIGKILL', () => {
  let dir: string;
  let fs: TestFilesystem;
  let up: ChildProcess | undefined;
  let children: Proc[] = [];
  let output = '';

  beforeAll(async () => {
    // The services run their compiled code, which takes the parent watch from
    // libs/service-kit's dist: compile what the test is about to run.
    await promisify(execFile)('npx', ['tsc', '-p', 'libs/service-kit/tsconfig.json'], { cwd: REPO });
    dir = await mkdtemp(join(tmpdir(), 'cairn-up-test-'));
    fs = await withBtrfs({ sizeMb: 512 });
    await busyboxImage(join(dir, 'images'), 'cairn/busybox:latest');
    await writeFile(join(dir, 'cairn.json'), JSON.stringify({ stateDir: join(dir, 'state') }));
    // The base-image-builder's matrix: one image on a pool no worker serves (its rebuild only waits in the queue).
    await mkdir(join(dir, 'matrix'));
    await copyFile(join(REPO, 'infra/images/busybox.spec'), join(dir, 'matrix', 'busybox.spec'));
    await writeFile(
      join(dir, 'matrix', 'matrix.yaml'),
      'images:\n  - name: busybox:latest\n    tags: [latest]\n    bootstrap: { kind: busybox-static }\n    spec: busybox.spec\n    pools: [up-test-nowhere]\n    platforms: [linux/amd64]\n    schedule: "0 3 * * 1"\n',
    );
  }, 180_000);
  afterAll(async () => {
    // Whatever the test found still running is ours to end, before its store is unmounted.
    for (const p of children) if (running(p.pid)) process.kill(p.pid, 'SIGKILL');
    if (up && up.exitCode === null && up.signalCode === null) up.kill('SIGKILL');
    await until('the leftovers ended', () => children.every((c) => !running(c.pid)), 10_000).catch(() => undefined);
    try {
      await fs?.cleanup();
    } finally {
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  it('leaves nothing running: nats-server, the registry and every service exit on their own, in bounded time', async () => {
    const natsUrl = `nats://127.0.0.1:${await freePort()}`;
    // `cairn up` from its sources, in this one process (no wrapper whose pid would be killed instead).
    const launcher = "import { main } from './apps/cli/src/main.ts'; process.exitCode = await main(process.argv.slice(1));";
    const env = { ...upEnv(dir, `btrfs:${fs.path}`, 'up-test-key'), CAIRN_IMAGES_DIR: join(dir, 'matrix') };
    up = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', launcher, 'up', '--nats', natsUrl, '--data', join(dir, 'cluster'), '--results-port', '0'],
      { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const upPid = up.pid!;

    // Up means every service running and the worker registered with the scheduler, asked
    // as tools/main-job.sh asks: `cairn admin workers` with CAIRN_NATS naming the server
    // cairn up started, which lets in only its own users; the CLI finds the admin's
    // password through the cluster file.
    await until(
      'the worker registered with the scheduler',
      async () => {
        const { stdout } = await promisify(execFile)(
          process.execPath,
          ['--import', 'tsx', '--input-type=module', '-e', launcher, 'admin', 'workers', '--json'],
          { cwd: REPO, env: { ...env, CAIRN_NATS: natsUrl } },
        ).catch(() => ({ stdout: '[]' }));
        return (JSON.parse(stdout) as WorkerInfo[]).some((w) => w.worker === 'local' && w.connected);
      },
      90_000,
      () => output,
    );
    // tsx, which runs `cairn up` from its sources here, keeps an esbuild helper of its own.
    children = (await childrenOf(upPid)).filter((c) => !/\/esbuild\b.* --service=/.test(c.command));
    // nats-server's and docker-registry's own pids (setpriv exec'd them), and each service by its script.
    const kind = (command: string) =>
      command.startsWith('/usr/sbin/nats-server') || command.startsWith('/usr/bin/nats-server')
        ? 'nats-server'
        : command.startsWith('/usr/bin/docker-registry ')
          ? 'docker-registry'
          : (/apps\/([\w-]+)\/dist\/main\.js/.exec(command)?.[1] ?? command);
    expect(children.map((c) => kind(c.command)).sort(), output).toEqual([
      'base-image-builder',
      'docker-registry',
      'nats-server',
      'results-store',
      'scheduler',
      'spec-compiler',
      'worker-agent',
    ]);

    up.kill('SIGKILL');
    const killedAt = Date.now();
    await until(
      'every child of the killed cairn up exited',
      () => children.every((c) => !running(c.pid)),
      30_000,
      () =>
        `still running: ${children
          .filter((c) => running(c.pid))
          .map((c) => `${c.pid} ${c.command}`)
          .join('; ')}\n${output}`,
    );
    // Well inside the first grace period (10 s): each took its clean SIGTERM path, nothing had to be forced.
    expect(Date.now() - killedAt).toBeLessThan(10_000);
  });
});
