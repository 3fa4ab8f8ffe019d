import { lstat, readlink, rmdir, unlink } from 'node:fs/promises';
import { posix } from 'node:path';

/**
 * runc and crun create a missing mount target, and its missing parents, inside the root
 * filesystem before mounting over it, and leave it there: a secret at /run/secrets/key
 * would leave an empty /run/secrets/key in the step's snapshot, and so would /etc/hosts
 * in an image that has none. `missingMountpoints` lists, before the run, the host paths
 * the runtime is going to create; `removeMountpoints` takes them away afterwards.
 */
export async function missingMountpoints(rootfs: string, destinations: readonly string[]): Promise<string[]> {
  const missing = new Set<string>();
  for (const destination of destinations) {
    const parts = (await resolveInRoot(rootfs, destination)).split('/').filter(Boolean);
    const prefix = (n: number) => posix.join(rootfs, ...parts.slice(0, n));
    let n = 1;
    while (n <= parts.length && (await exists(prefix(n)))) n++;
    for (; n <= parts.length; n++) missing.add(prefix(n));
  }
  return [...missing];
}

/**
 * Removes what `missingMountpoints` listed, children before parents, as long as it is
 * still an empty file or an empty directory: whatever the step put there stays.
 */
export async function removeMountpoints(paths: readonly string[]): Promise<void> {
  const deepestFirst = [...paths].sort((a, b) => b.split('/').length - a.split('/').length);
  for (const path of deepestFirst) {
    const stat = await lstat(path).catch(() => undefined);
    if (stat?.isDirectory()) await rmdir(path).catch(ignore('ENOTEMPTY', 'EEXIST', 'EBUSY'));
    else if (stat?.isFile() && stat.size === 0) await unlink(path);
  }
}

/**
 * Where `path` lands inside `rootfs` once symlinks are followed the way the runtimes
 * do it (absolute links and `..` stay inside the root), so that /var/run/x is found at
 * /run/x on images where /var/run is a link. Past 40 links (a loop), `onLoop` decides:
 * by default the path resolved so far is returned and the runtime reports the loop.
 */
export async function resolveInRoot(
  rootfs: string,
  path: string,
  onLoop: (path: string, partial: string) => string = (_, partial) => partial,
): Promise<string> {
  let resolved = '/';
  let pending = path.split('/');
  for (let links = 0; pending.length > 0;) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved = posix.dirname(resolved);
      continue;
    }
    const next = posix.join(resolved, part);
    const target = await readlink(posix.join(rootfs, next)).catch(() => undefined);
    if (target === undefined) {
      resolved = next;
      continue;
    }
    // The kernel's limit.
    if (++links > 40) return onLoop(path, next);
    if (target.startsWith('/')) resolved = '/';
    pending = [...target.split('/'), ...pending];
  }
  return resolved;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

function ignore(...codes: string[]) {
  return (e: NodeJS.ErrnoException) => {
    if (!codes.includes(e.code ?? '')) throw e;
  };
}
