import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, rmdir, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestFilesystem } from './filesystems.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const PREFIX = 'cairn-test-';
let pools = 0;

/** A ZFS pool made for a test: `path` is where its root dataset is mounted, `/NAME`. */
export interface TestPool extends TestFilesystem {
  readonly name: string;
}

/**
 * A fresh file-backed ZFS pool on Debian's zfs-fuse (started if it is not running),
 * mounted at `/NAME`, so that `--store zfs:NAME/DATASET` (mounted at `/NAME/DATASET`)
 * lands in `path`. zpool refuses less than 64 MB.
 */
export async function withZfsPool(options: { readonly sizeMb?: number } = {}): Promise<TestPool> {
  await startZfsFuse();
  await destroyDeadRunsPools();
  pools += 1;
  const name = `${PREFIX}${process.pid}-${pools}`;
  const dir = await mkdtemp(join(tmpdir(), 'cairn-zfs-'));
  const image = join(dir, 'image');
  try {
    await writeFile(image, '');
    await truncate(image, (options.sizeMb ?? 2048) * MiB);
    await run('zpool', ['create', '-m', `/${name}`, name, image]);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  let done: Promise<void> | undefined;
  const cleanup = async () => {
    await destroyPool(name);
    await rm(dir, { recursive: true, force: true });
  };
  return { name, path: `/${name}`, cleanup: () => (done ??= cleanup()) };
}

/**
 * One zfs-fuse daemon for the machine, however many test files ask at once (flock). It
 * stays up after the tests, as a service would. zfs-fuse refuses to start while its
 * pidfile exists, alive or not, and a machine whose daemon was killed (a session's end,
 * a reboot without tmpfs /run) keeps that file: only a live pid keeps it.
 */
async function startZfsFuse(): Promise<void> {
  const pidfile = '/run/zfs-fuse.pid';
  const script = [
    'zpool list >/dev/null 2>&1 && exit 0',
    `[ -f ${pidfile} ] && kill -0 "$(cat ${pidfile})" 2>/dev/null && exit 0`,
    `rm -f ${pidfile}`,
    'ulimit -s unlimited',
    `exec zfs-fuse --pidfile ${pidfile}`,
  ].join('\n');
  // --close: the daemon must not inherit the lock, or every later caller waits forever.
  try {
    await run('flock', ['--close', '/run/cairn-zfs-fuse.lock', 'sh', '-c', script]);
  } catch (e) {
    const said = String((e as { stderr?: string }).stderr ?? '').trim() || 'no message; zfs-fuse logs to syslog';
    throw new Error(`cannot start zfs-fuse (${said}); tools/setup.sh installs it`, { cause: e });
  }
  // The daemon answers a moment after it forks.
  for (let tries = 0; ; tries++) {
    try {
      await run('zpool', ['list']);
      return;
    } catch (e) {
      if (tries >= 50) throw new Error('zfs-fuse started but zpool cannot reach it', { cause: e });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Pools of test processes that died before their cleanup (named cairn-test-PID-N). */
async function destroyDeadRunsPools(): Promise<void> {
  const names = (await run('zpool', ['list', '-H', '-o', 'name'])).stdout.split('\n');
  for (const name of names) {
    const pid = Number(/^cairn-test-(\d+)-\d+$/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    const alive = await readFile(`/proc/${pid}/cmdline`).then(
      () => true,
      () => false,
    );
    if (!alive) await destroyPool(name).catch(() => undefined);
  }
}

/** zfs-fuse lets go of a filesystem a moment after its last use: a busy pool is tried again. */
async function destroyPool(name: string): Promise<void> {
  for (let tries = 0; ; tries++) {
    try {
      await run('zpool', ['destroy', '-f', name]);
      break;
    } catch (e) {
      const stderr = String((e as { stderr?: unknown }).stderr ?? '');
      if (/no such pool/.test(stderr)) break;
      if (tries >= 50) throw e;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  await rmdir(`/${name}`).catch(() => undefined);
}
