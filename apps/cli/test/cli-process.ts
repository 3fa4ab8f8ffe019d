import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { busyboxImage } from '../../../test/support/images.js';
import { withBtrfs, withTempDir, withXfs, type TestFilesystem } from '../../../test/support/filesystems.js';
import { withZfsPool } from '../../../test/support/zfs.js';

const REPO = join(import.meta.dirname, '../../..');
export const CLI = join(REPO, 'apps/cli/bin/cairn.js');
export const IMAGE = 'cairn/busybox:latest';

export interface CliResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * A store on a real filesystem, with images and a private runtime state dir, that `cairn`
 * processes are pointed at through the environment: what several users of one machine
 * (or one CI runner's parallel jobs) share.
 */
export interface CliStore {
  readonly kind: string;
  readonly path: string;
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  /** Runs `cairn ARGS` to its end, asynchronously so that others run beside it. */
  cairn(args: readonly string[]): Promise<CliResult>;
  /** Starts `cairn ARGS` and hands back the process. */
  start(args: readonly string[]): ChildProcess;
  specFile(name: string, ops: string): Promise<string>;
  cleanup(): Promise<void>;
}

/** `path` is where the store's files are; a ZFS store (`zfs:POOL/cairn`, on a zfs-fuse pool) is mounted at /POOL/cairn. */
export async function cliStore(kind: 'btrfs' | 'overlayfs' | 'rsync' | 'xfs' | 'zfs'): Promise<CliStore> {
  const dir = await mkdtemp(join(tmpdir(), `cairn-cli-${kind}-`));
  const pool = kind === 'zfs' ? await withZfsPool() : undefined;
  const fs: TestFilesystem = pool ?? (kind === 'btrfs' ? await withBtrfs() : kind === 'xfs' ? await withXfs() : await withTempDir());
  const store = pool ? `${pool.name}/cairn` : fs.path;
  await busyboxImage(join(dir, 'images'), IMAGE);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CAIRN_STORE: `${kind}:${store}`,
    CAIRN_FETCHER: `oci:${join(dir, 'images')}`,
    CAIRN_CONFIG: join(dir, 'cairn.json'),
    CAIRN_SECRET_KEY: 'k',
  };
  await writeFile(env.CAIRN_CONFIG!, JSON.stringify({ stateDir: join(dir, 'state'), healthcheckImage: IMAGE }));
  return {
    kind,
    path: pool ? `/${store}` : fs.path,
    dir,
    env,
    cairn: (args) =>
      new Promise((resolve) => {
        execFile(process.execPath, [CLI, ...args], { env, cwd: dir, maxBuffer: 64 << 20 }, (error, stdout, stderr) =>
          resolve({ status: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
        );
      }),
    start: (args) => spawn(process.execPath, [CLI, ...args], { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }),
    specFile: async (name, ops) => {
      const path = join(dir, name);
      await writeFile(path, `((from ${IMAGE}) (shell /bin/sh -c) ${ops})`);
      return path;
    },
    cleanup: async () => {
      await fs.cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Collects a started process's output; `waitFor` resolves once stdout shows `text`. */
export function follow(child: ChildProcess): { readonly done: Promise<CliResult>; waitFor(text: string): Promise<void> } {
  let stdout = '';
  let stderr = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const w of waiters.filter((w) => stdout.includes(w.text))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  child.stderr!.on('data', (d: Buffer) => void (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.once('close', (status) => resolve({ status, stdout, stderr })));
  return {
    done,
    waitFor: (text) =>
      new Promise<void>((resolve, reject) => {
        if (stdout.includes(text)) return resolve();
        waiters.push({ text, resolve });
        void done.then((r) => reject(new Error(`cairn exited (${r.status}) before printing ${JSON.stringify(text)}:\n${r.stdout}\n${r.stderr}`)));
      }),
  };
}
