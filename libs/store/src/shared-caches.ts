import { chown, mkdir, readdir, rename, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { User } from '@cairn/spec';
import { currentGeneration, generationName, generations, OnceReleasedCacheView, type Generation } from './cache-generations.js';
import { errorCode, pathExists } from './errno.js';
import type { StoreLayout } from './layout.js';
import type { CacheView } from './store.js';
import type { TreeOps } from './tree-ops.js';

/**
 * Shared caches, the same on every driver; only how a tree is made, copied and removed
 * differs (TreeOps: subvolume snapshots on btrfs, copies elsewhere).
 *
 * A cache is a directory `cache/<key>/` (layout.ts cacheKey: its escaped name, after
 * its escaped trust domain if it has one) holding its current generation as a
 * subdirectory `<generation>-<random token>`; a view is a copy of it in cache-tmp/.
 * Committing a view takes two renames: first the view's base generation is moved out
 * (to cache-tmp/, to be removed), then the view is moved in as generation + 1. The first
 * rename is the generation check: renaming a path that is gone fails, and of several
 * processes renaming the same path at once the kernel lets exactly one succeed. So
 * exactly one commit per generation wins, in whichever process, with no lock to leave
 * behind after a crash and no counter in memory to disagree with the disk. The token
 * makes each generation's name unique, so a view of a deleted (or re-created) cache
 * never takes a generation that is not its own.
 *
 * The price of having no lock: a view taken in the moment between a commit's two renames
 * finds no generation and starts a fresh, empty one (which the commit's clean-up then
 * removes), and a crash between the two renames loses the cache's content. Both leave a
 * cache emptier than it could be, which a cache tolerates.
 */
export class SharedCaches {
  constructor(
    private readonly layout: StoreLayout,
    private readonly trees: TreeOps,
  ) {}

  async view(name: string, user: User, domain?: string): Promise<CacheView> {
    const dir = this.layout.cache(name, domain);
    if (user.kind !== 'unix')
      throw new Error(`cache ${JSON.stringify(name)}: this store holds Linux filesystems, so a cache belongs to a unix user, not to ${user.name}`);
    for (;;) {
      const base = await currentGeneration(dir);
      if (base === undefined) {
        await this.createGeneration(dir, user.uid, user.gid);
        continue;
      }
      const basePath = join(dir, base.name);
      const path = this.layout.newCacheTemp('view');
      try {
        await this.trees.copy(basePath, path);
      } catch (e) {
        await this.trees.remove(path);
        if (await pathExists(basePath)) throw e;
        continue;
      }
      // cp and rsync do not notice a tree being removed under them, so a copy counts only
      // if its source was still in place (not yet moved out by a commit) once it was done.
      if (await pathExists(basePath)) return new OnceReleasedCacheView(path, (commit) => this.release(dir, base, path, commit));
      await this.trees.remove(path);
    }
  }

  /** Moves the cache out of sight at once, then removes it; views already taken are separate trees. */
  async delete(name: string, domain?: string): Promise<void> {
    const garbage = this.layout.newCacheTemp('deleted');
    try {
      await rename(this.layout.cache(name, domain), garbage);
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return;
      throw e;
    }
    for (const entry of await readdir(garbage)) await this.trees.remove(join(garbage, entry));
    await rmdir(garbage);
  }

  private async createGeneration(dir: string, uid: number, gid: number): Promise<void> {
    await mkdir(dir, { recursive: true });
    const path = this.layout.newCacheTemp('new');
    await this.trees.create(path);
    try {
      await chown(path, uid, gid);
      await rename(path, join(dir, generationName(0)));
    } catch (e) {
      await this.trees.remove(path);
      // ENOENT: the cache was deleted meanwhile; the caller looks again.
      if (errorCode(e) !== 'ENOENT') throw e;
    }
  }

  private async release(dir: string, base: Generation, view: string, commit: boolean): Promise<void> {
    if (!commit) return this.trees.remove(view);
    const old = this.layout.newCacheTemp('old');
    try {
      await rename(join(dir, base.name), old);
    } catch (e) {
      await this.trees.remove(view);
      // ENOENT: another view of this generation was committed first; this one loses.
      if (errorCode(e) === 'ENOENT') return;
      throw e;
    }
    try {
      await rename(view, join(dir, generationName(base.generation + 1)));
    } catch (e) {
      await this.trees.remove(view);
      // ENOENT: the cache was deleted meanwhile, and a deleted cache takes no commits.
      if (errorCode(e) !== 'ENOENT') throw e;
    } finally {
      await this.trees.remove(old);
    }
    await this.removeGenerationsBelow(dir, base.generation + 1);
  }

  /** Generations that lost a race: first views made at once, or a view taken during a commit (see above). */
  private async removeGenerationsBelow(dir: string, generation: number): Promise<void> {
    for (const g of await generations(dir)) {
      if (g.generation >= generation) continue;
      const old = this.layout.newCacheTemp('old');
      try {
        await rename(join(dir, g.name), old);
      } catch (e) {
        if (errorCode(e) === 'ENOENT') continue;
        throw e;
      }
      await this.trees.remove(old);
    }
  }
}
