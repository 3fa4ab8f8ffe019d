import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalStore } from './local-store.js';

/**
 * A store whose results are plain directories, each holding a whole root filesystem: a
 * build copies the parent's rootfs into the temp and publishes the temp with one rename.
 * Its drivers differ only in how they copy.
 */
export abstract class CopyingStore extends LocalStore {
  /** Makes `dst` (which does not exist) the new result's copy of the parent's rootfs `src`. */
  protected abstract copyRootfs(src: string, dst: string): Promise<void>;

  protected async prepare(parent: string | undefined, tmp: string): Promise<void> {
    await mkdir(tmp);
    const rootfs = join(tmp, 'rootfs');
    if (parent === undefined) await mkdir(rootfs);
    else await this.copyRootfs(join(this.layout.result(parent), 'rootfs'), rootfs);
  }

  protected publish(tmp: string, id: string): Promise<void> {
    return this.publishByRename(tmp, id);
  }

  async delete(id: string): Promise<void> {
    const garbage = await this.unpublish(id);
    if (garbage !== undefined) await this.trees.remove(garbage);
  }
}
