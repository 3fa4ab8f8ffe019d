import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { DiskQuota } from './disk-limit.js';
import { LocalStore } from './local-store.js';

/** A quota started on an empty temp, its limit set once the parent's rootfs is in. */
export interface StartedQuota extends DiskQuota {
  /** Lets the temp hold `bytes` more than it does now. */
  limit(bytes: number): Promise<void>;
}

/**
 * A store whose results are plain directories, each holding a whole root filesystem: a
 * build copies the parent's rootfs into the temp and publishes the temp with one rename.
 * Its drivers differ only in how they copy.
 */
export abstract class CopyingStore extends LocalStore {
  /** Makes `dst` (which does not exist) the new result's copy of the parent's rootfs `src`. */
  protected abstract copyRootfs(src: string, dst: string): Promise<void>;

  protected async prepare(parent: string | undefined, tmp: string, diskBytes: number | undefined): Promise<DiskQuota | undefined> {
    await mkdir(tmp);
    // Started on the empty temp, before the copy: the copied files are the temp's own then.
    const quota = diskBytes === undefined ? undefined : await this.startQuota(tmp);
    const rootfs = join(tmp, 'rootfs');
    if (parent === undefined) await mkdir(rootfs);
    else await this.copyRootfs(join(this.layout.result(parent), 'rootfs'), rootfs);
    if (quota === undefined) return undefined;
    await quota.limit(diskBytes!);
    return quota;
  }

  /** A quota on the empty temp `tmp`: asked only of drivers whose diskLimitProblem is undefined. */
  protected startQuota(tmp: string): Promise<StartedQuota> {
    return Promise.reject(new Error(`the ${this.kind} store has no quota to put on ${tmp}`));
  }

  protected publish(tmp: string, id: string): Promise<void> {
    return this.publishByRename(tmp, id);
  }

  async delete(id: string): Promise<void> {
    const garbage = await this.unpublish(id);
    if (garbage !== undefined) await this.trees.remove(garbage);
  }
}
