import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { copyTree, rsyncTree } from '@cairn/store';

/** statfs's f_type of a FUSE filesystem (linux/magic.h). */
const FUSE_SUPER_MAGIC = 0x65735546;

export async function onFuse(dir: string): Promise<boolean> {
  return (await statfs(dir)).type === FUSE_SUPER_MAGIC;
}

/**
 * A FUSE filesystem (zfs-fuse's datasets) checks each request against the caller's host
 * uid, not against its capabilities in its user namespace: a remapped step's root would
 * be host uid 100000 there, its chown refused and files of other users out of its reach.
 * So a remapped step gets each writable directory that is on FUSE as a copy on the
 * bundle's filesystem (kernel-backed: /run by default), and what it leaves there is
 * written back afterwards, compared by content. Two full copies per step: the price of
 * `remap` on such a store, where a kernel filesystem pays none of it.
 */
export class FuseStaging {
  private constructor(private readonly copies: ReadonlyMap<string, string>) {}

  /** Copies each of `dirs` that is on FUSE into `stageDir` (an existing directory). */
  static async of(dirs: readonly string[], stageDir: string): Promise<FuseStaging> {
    const copies = new Map<string, string>();
    for (const dir of dirs) {
      if (copies.has(dir) || !(await onFuse(dir))) continue;
      const copy = join(stageDir, `stage-${copies.size}`);
      await copyTree(dir, copy, 'auto');
      copies.set(dir, copy);
    }
    return new FuseStaging(copies);
  }

  /** Where the step sees `dir`. */
  pathOf(dir: string): string {
    return this.copies.get(dir) ?? dir;
  }

  /** Makes each staged directory what the step left in its copy. */
  async writeBack(): Promise<void> {
    for (const [dir, copy] of this.copies) await rsyncTree(copy, dir, { mirror: true });
  }
}
