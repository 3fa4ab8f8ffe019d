import { statfs } from 'node:fs/promises';
import type { FreeSpace } from './store.js';

/**
 * Free space of the filesystem holding `path`, as an unprivileged writer sees it (root's
 * reserved blocks are not counted as free). Filesystems that allocate inodes on demand
 * (btrfs) report 0 inodes of 0.
 */
export async function freeSpace(path: string): Promise<FreeSpace> {
  const s = await statfs(path);
  return { bytesFree: s.bavail * s.bsize, bytesTotal: s.blocks * s.bsize, inodesFree: s.ffree, inodesTotal: s.files };
}
