import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Reading files out of a finished snapshot (artifact export): `store.withRootfs` gives
 * the snapshot's root filesystem on the host, and `resolveInRoot` turns a path inside
 * it into a host path the way the build's own processes would see it, following
 * symlinks as if `root` were `/`. A snapshot is built by untrusted steps, so a symlink
 * such as `/out -> /etc/shadow` or `../../..` must resolve inside the snapshot, never to
 * the host's file.
 */
export class SnapshotPathError extends Error {
  override readonly name = 'SnapshotPathError';
}

const MAX_SYMLINKS = 40;

/** The host path of `path` (absolute, inside the snapshot) with every symlink resolved within `root`. */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  if (!path.startsWith('/')) throw new SnapshotPathError(`"${path}" is not an absolute path`);
  // Components still to walk, first one first; `done` is the resolved part, always inside root.
  let pending = path.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const [component, ...rest] = pending as [string, ...string[]];
    pending = rest;
    if (component === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, component);
    let info;
    try {
      info = await lstat(host);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') {
        throw new SnapshotPathError(`"${path}" does not exist in the snapshot`);
      }
      throw e;
    }
    if (!info.isSymbolicLink()) {
      done.push(component);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw new SnapshotPathError(`"${path}": too many levels of symbolic links`);
    const target = await readlink(host);
    if (target.startsWith('/')) done.length = 0;
    pending = [...target.split('/').filter((c) => c !== '' && c !== '.'), ...pending];
  }
  return join(root, ...done);
}
