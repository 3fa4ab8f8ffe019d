import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  commitTransaction,
  createSubvolume,
  deleteSubvolume,
  exclusiveBytes,
  isOnBtrfs,
  limitExclusive,
  quotasEnabled,
  removeSubvolumeOrTree,
  snapshotSubvolume,
} from './btrfs.js';
import { nearLimit, type DiskQuota } from './disk-limit.js';
import { LocalStore } from './local-store.js';

/**
 * Results are read-only btrfs subvolumes `result/<id>`; a build snapshots its parent's
 * subvolume (constant time, copy-on-write) into result-tmp/, and cache views are
 * snapshots of the cache's subvolume.
 *
 * Publishing takes a read-only snapshot of the temp at `result/<id>` rather than making
 * the temp read-only and renaming it: btrfs refuses to move a read-only subvolume to
 * another directory (EROFS), and creating a snapshot is just as atomic.
 *
 * A disk limit is a qgroup limit on the temp subvolume's exclusive bytes: what the step
 * writes that its parent does not share (rewriting a parent's file counts, deleting one
 * frees nothing). It needs quotas on the filesystem (`btrfs quota enable`).
 */
export class BtrfsStore extends LocalStore {
  readonly kind = 'btrfs';

  constructor(root: string) {
    super(root, {
      create: createSubvolume,
      copy: (src, dst) => snapshotSubvolume(src, dst, { readOnly: false }),
      remove: removeSubvolumeOrTree,
    });
  }

  override async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    if (!(await isOnBtrfs(this.root))) throw new Error(`the btrfs store at ${this.root} is not on a btrfs filesystem`);
    await super.init();
  }

  protected async prepare(parent: string | undefined, tmp: string, diskBytes: number | undefined): Promise<DiskQuota | undefined> {
    if (parent === undefined) {
      await createSubvolume(tmp);
      await mkdir(join(tmp, 'rootfs'));
    } else {
      await snapshotSubvolume(this.layout.result(parent), tmp, { readOnly: false });
      // Only the rootfs is inherited: the parent's log and other files are its own.
      for (const entry of await readdir(tmp)) {
        if (entry !== 'rootfs') await rm(join(tmp, entry), { recursive: true, force: true });
      }
    }
    if (diskBytes === undefined) return undefined;
    await limitExclusive(tmp, diskBytes);
    return {
      reached: async () => nearLimit(diskBytes - (await exclusiveBytes(tmp)), diskBytes),
      // The qgroup goes with the temp subvolume; the published snapshot has one of its own, unlimited.
      release: () => Promise.resolve(),
    };
  }

  protected override async diskLimitProblem(): Promise<string | undefined> {
    if (await quotasEnabled(this.root)) return undefined;
    return `quotas are off on its filesystem: turn them on with \`btrfs quota enable ${this.root}\` (they slow snapshots and writes somewhat)`;
  }

  protected async publish(tmp: string, id: string): Promise<void> {
    try {
      await snapshotSubvolume(tmp, this.layout.result(id), { readOnly: true });
    } catch (e) {
      // A result published meanwhile is a read-only directory: btrfs tried to snapshot into it.
      if (await this.exists(id)) throw this.alreadyExists(id);
      throw e;
    }
  }

  async delete(id: string): Promise<void> {
    // Unlinking a subvolume is atomic: no need to move it out of sight first.
    try {
      await deleteSubvolume(this.layout.result(id));
    } catch (e) {
      if (await this.exists(id)) throw e;
      return;
    }
    await this.reclaimSpace();
  }

  /** Deleting is how a full store makes room: commit so that the space is usable now. */
  protected override async reclaimSpace(): Promise<void> {
    await commitTransaction(this.root);
  }

  /**
   * A deleted subvolume's space comes back only when the cleaner gets to it, which can
   * be long after a commit; unlinked files' space comes back at the commit. After a full
   * store the next step needs the room at once, so empty the temp first.
   */
  protected override async removeTempAfterFull(temp: string): Promise<void> {
    await rm(join(temp, 'rootfs'), { recursive: true, force: true });
    await commitTransaction(this.root);
    await this.removeTemp(temp);
  }
}
