import { lstat, readlink } from 'node:fs/promises';
import { posix } from 'node:path';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_LINKS = 40;

/**
 * Whether a step's command exists in its root filesystem, looked up as the runtime would:
 * a name with a "/" as it is (relative to the working directory), a bare name along the
 * step's PATH. Asked only after a step failed, to tell "not found: /bin/sh" from a
 * command that ran and exited 1: runc and crun report both with a plain exit code.
 */
export async function commandExists(rootfs: string, command: string, cwd: string, env: readonly (readonly [string, string])[]): Promise<boolean> {
  if (command.includes('/')) return fileInRoot(rootfs, posix.resolve(cwd, command));
  const path = env.find(([k]) => k === 'PATH')?.[1] ?? DEFAULT_PATH;
  for (const dir of path.split(':')) {
    if (dir !== '' && (await fileInRoot(rootfs, posix.resolve(cwd, dir, command)))) return true;
  }
  return false;
}

/**
 * Follows `path` inside `rootfs` as the container would see it: absolute link targets
 * point into the rootfs, not the host (`/bin/sh -> /bin/busybox` must not find the host's
 * busybox), and ".." never climbs out of it.
 */
async function fileInRoot(rootfs: string, path: string): Promise<boolean> {
  let pending = path.split('/').filter((p) => p !== '' && p !== '.');
  let at: string[] = [];
  for (let links = 0; pending.length > 0;) {
    const part = pending.shift()!;
    if (part === '..') {
      at.pop();
      continue;
    }
    const host = posix.join(rootfs, ...at, part);
    let isLink: boolean;
    try {
      isLink = (await lstat(host)).isSymbolicLink();
    } catch {
      return false;
    }
    if (!isLink) {
      at.push(part);
      continue;
    }
    if (++links > MAX_LINKS) return false;
    const target = await readlink(host);
    if (target.startsWith('/')) at = [];
    pending = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...pending];
  }
  return true;
}
