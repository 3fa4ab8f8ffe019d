import { lstat, rm, statfs } from 'node:fs/promises';
import { runCommand } from './command.js';
import { errorCode } from './errno.js';

// Every `btrfs` command the store runs.

const BTRFS_SUPER_MAGIC = 0x9123683e;
/** The inode number of every subvolume's root directory. */
const SUBVOLUME_ROOT_INODE = 256;

export async function isOnBtrfs(path: string): Promise<boolean> {
  return (await statfs(path)).type === BTRFS_SUPER_MAGIC;
}

export async function createSubvolume(path: string): Promise<void> {
  await runCommand('btrfs', ['subvolume', 'create', path]);
}

/** `dst` must not exist: when it is a directory, btrfs puts the snapshot inside it. */
export async function snapshotSubvolume(src: string, dst: string, options: { readonly readOnly: boolean }): Promise<void> {
  await runCommand('btrfs', ['subvolume', 'snapshot', ...(options.readOnly ? ['-r'] : []), src, dst]);
}

/** Deletes a subvolume, read-only or not; its space comes back after the next commit. */
export async function deleteSubvolume(path: string): Promise<void> {
  await runCommand('btrfs', ['subvolume', 'delete', path]);
}

/**
 * Commits the filesystem's transaction now, so that the cleaner gives back the space of
 * deleted subvolumes without waiting for the periodic commit (30 s). Not `subvolume
 * delete --commit-after`: its asynchronous commit can lose its wake-up when two run at
 * once (seen on Linux 6.18) and then waits for the periodic commit anyway.
 */
export async function commitTransaction(path: string): Promise<void> {
  await runCommand('btrfs', ['filesystem', 'sync', path]);
}

/**
 * Removes a subvolume or a plain directory, if there is one at `path`. Plain directories
 * may hold writable subvolumes: the kernel lets rmdir delete them once they are empty.
 */
export async function removeSubvolumeOrTree(path: string): Promise<void> {
  let ino: number;
  try {
    ino = (await lstat(path)).ino;
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return;
    throw e;
  }
  try {
    if (ino === SUBVOLUME_ROOT_INODE) await deleteSubvolume(path);
    else await rm(path, { recursive: true, force: true });
  } catch (e) {
    // Another process removed it first ("Could not statfs", ENOTEMPTY from a racing rm).
    if (await gone(path)) return;
    throw e;
  }
}

async function gone(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return false;
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return true;
    throw e;
  }
}

/** Whether `path`'s filesystem keeps qgroups (`btrfs quota enable`), which a subvolume's disk limit needs. */
export async function quotasEnabled(path: string): Promise<boolean> {
  try {
    await runCommand('btrfs', ['qgroup', 'show', '-f', path]);
    return true;
  } catch (e) {
    if (/quotas not enabled/i.test((e as { stderr?: string }).stderr ?? '')) return false;
    throw e;
  }
}

/** Limits what subvolume `path` holds that no other subvolume shares (its qgroup's exclusive bytes). */
export async function limitExclusive(path: string, bytes: number): Promise<void> {
  await runCommand('btrfs', ['qgroup', 'limit', '-e', String(bytes), path]);
}

/**
 * The exclusive bytes of subvolume `path`, once the transaction is committed: qgroups are
 * counted at commits, so the last writes would be missing otherwise.
 */
export async function exclusiveBytes(path: string): Promise<number> {
  await commitTransaction(path);
  const { execa } = await import('execa');
  const out = (await execa('btrfs', ['qgroup', 'show', '--raw', '-f', path])).stdout;
  const rows = out.split('\n').map((line) => line.trim().split(/\s+/));
  const column = rows[0]?.findIndex((title) => /^excl/i.test(title)) ?? -1;
  const value = Number(rows.find((row) => /^\d+\/\d+$/.test(row[0] ?? ''))?.[column]);
  if (column < 0 || !Number.isFinite(value))
    throw new Error(`cannot read the exclusive bytes of btrfs subvolume ${path}: btrfs qgroup show printed ${JSON.stringify(out)}`);
  return value;
}
