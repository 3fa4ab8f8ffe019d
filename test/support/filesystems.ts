import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, realpath, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MiB = 1024 * 1024;

/** A filesystem made for a test, mounted at `path`; `cleanup` undoes everything, once. */
export interface TestFilesystem {
  readonly path: string;
  cleanup(): Promise<void>;
}

/**
 * A fresh btrfs in a sparse image under os.tmpdir(), loop-mounted. Below 1 GiB it uses
 * mixed block groups, as mkfs.btrfs advises (and needs below ~114 MB): data and metadata
 * then share space, so a small filesystem fills up the way a big one does.
 */
export async function withBtrfs(options: { readonly sizeMb?: number; readonly quotas?: boolean } = {}): Promise<TestFilesystem> {
  const sizeMb = options.sizeMb ?? 2048;
  const fs = await withLoopFilesystem('btrfs', sizeMb, ['mkfs.btrfs', '-q', ...(sizeMb < 1024 ? ['--mixed'] : [])]);
  try {
    // Qgroups, which a store's disk limit needs; as an operator turns them on.
    if (options.quotas) await run('btrfs', ['quota', 'enable', fs.path]);
  } catch (e) {
    await fs.cleanup();
    throw e;
  }
  return fs;
}

/** A fresh XFS with reflinks, as withBtrfs. mkfs.xfs refuses less than 300 MB. */
export function withXfs(options: { readonly sizeMb?: number } = {}): Promise<TestFilesystem> {
  return withLoopFilesystem('xfs', options.sizeMb ?? 2048, ['mkfs.xfs', '-q', '-m', 'reflink=1']);
}

/** A fresh tmpfs of `sizeMb`: a small filesystem to fill up without a loop device. */
export async function withTmpfs(options: { readonly sizeMb: number }): Promise<TestFilesystem> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-tmpfs-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${options.sizeMb}m`, 'cairn-test', dir]);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return once(dir, async () => {
    await unmountAllUnder(dir);
    await rm(dir, { recursive: true, force: true });
  });
}

/** A fresh directory under os.tmpdir(); `cleanup` also unmounts what a test left mounted in it. */
export async function withTempDir(): Promise<TestFilesystem> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-dir-'));
  return once(dir, async () => {
    await unmountAllUnder(dir);
    await rm(dir, { recursive: true, force: true });
  });
}

/** Mount points at or below `dir`, deepest first, per /proc/self/mountinfo. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const real = await realpath(dir);
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((line) => (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))))
    .filter((point) => point === real || point.startsWith(`${real}/`))
    .sort((a, b) => b.length - a.length);
}

async function unmountAllUnder(dir: string): Promise<void> {
  for (const point of await mountsUnder(dir)) await unmount(point);
}

/**
 * A mount is busy for a moment after the last process using it ended (seen after `cairn
 * up` was killed with SIGKILL and its children just exited): try for a few seconds, then
 * fail naming what still holds it.
 */
async function unmount(point: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await run('umount', [point]);
      return;
    } catch (e) {
      if (!String((e as { stderr?: string }).stderr ?? e).includes('target is busy')) throw e;
      if (attempt === 20) {
        const holders = await run('fuser', ['-vm', point]).then(
          (r) => `${r.stdout}${r.stderr}`,
          (f: { stdout?: string; stderr?: string }) => `${f.stdout ?? ''}${f.stderr ?? ''}`,
        );
        throw new Error(`umount ${point}: still busy after ${attempt} tries; held by:\n${holders}`, { cause: e });
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

async function withLoopFilesystem(kind: string, sizeMb: number, mkfs: readonly string[]): Promise<TestFilesystem> {
  const dir = await mkdtemp(join(tmpdir(), `cairn-${kind}-`));
  const image = join(dir, 'image');
  const path = join(dir, 'mnt');
  // Undo steps, newest first, for a failure half-way as much as for cleanup.
  const undo: (() => Promise<unknown>)[] = [() => rm(dir, { recursive: true, force: true })];
  const undoAll = async () => {
    for (const step of undo.splice(0).reverse()) await step();
  };
  try {
    await writeFile(image, '');
    await truncate(image, sizeMb * MiB);
    await run(mkfs[0]!, [...mkfs.slice(1), image]);
    const device = (await run('losetup', ['--find', '--show', image])).stdout.trim();
    undo.push(() => run('losetup', ['--detach', device]));
    await mkdir(path);
    await run('mount', [device, path]);
    undo.push(() => unmountAllUnder(path));
  } catch (e) {
    await undoAll();
    throw e;
  }
  return once(path, undoAll);
}

function once(path: string, cleanup: () => Promise<void>): TestFilesystem {
  let done: Promise<void> | undefined;
  return { path, cleanup: () => (done ??= cleanup()) };
}
