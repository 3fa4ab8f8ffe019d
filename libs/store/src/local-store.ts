import { rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { User } from '@cairn/spec';
import { DiskLimitError, DiskLimitUnsupportedError, type BuildLimits, type DiskQuota } from './disk-limit.js';
import { errorCode, pathExists } from './errno.js';
import { freeSpace } from './free-space.js';
import { StoreLayout } from './layout.js';
import { unmountAllUnder } from './mount.js';
import { readLogFile, readMetadataFile } from './result-files.js';
import { SharedCaches } from './shared-caches.js';
import { storeFullOr } from './store-full.js';
import { RESULT_LOG, RESULT_METADATA, StoreFullError, type CacheView, type FreeSpace, type Store } from './store.js';
import type { TreeOps } from './tree-ops.js';

/**
 * What every driver in this library shares: the layout under the root, crash clean-up,
 * the build sequence (temp, fn, publish, or remove the temp), caches and free space. A
 * driver says how to prepare a temp from its parent, publish it and delete a result.
 */
export abstract class LocalStore implements Store {
  abstract readonly kind: string;
  readonly root: string;
  get hostDir(): string {
    return this.root;
  }
  protected readonly layout: StoreLayout;
  private readonly caches: SharedCaches;

  constructor(
    root: string,
    protected readonly trees: TreeOps,
  ) {
    // Absolute, so that a later chdir cannot move the store.
    this.root = resolve(root);
    this.layout = new StoreLayout(this.root);
    this.caches = new SharedCaches(this.layout, trees);
  }

  /**
   * Fills `tmp` (which does not exist yet): `tmp/rootfs` a writable clone of `parent`'s;
   * with `diskBytes`, under a quota letting the step add that much (only drivers whose
   * diskLimitProblem is undefined get one).
   */
  protected abstract prepare(parent: string | undefined, tmp: string, diskBytes: number | undefined): Promise<DiskQuota | undefined>;
  /** Makes `tmp` visible as `id` in one step, failing if `id` exists. */
  protected abstract publish(tmp: string, id: string): Promise<void>;
  abstract delete(id: string): Promise<void>;

  async init(): Promise<void> {
    await this.layout.create();
    for (const temp of await this.layout.deadTemps()) {
      // Other processes may be cleaning up at the same moment: each temp goes to one of them.
      const claimed = await this.layout.claim(temp);
      if (claimed === undefined) continue;
      await this.removeTemp(claimed).catch(async (e: unknown) => {
        if (await pathExists(claimed)) throw e;
      });
    }
  }

  exists(id: string): Promise<boolean> {
    return pathExists(this.layout.result(id));
  }

  metadata(id: string): Promise<string | undefined> {
    return readMetadataFile(join(this.layout.result(id), RESULT_METADATA));
  }

  log(id: string): AsyncIterable<Uint8Array> {
    return readLogFile(join(this.layout.result(id), RESULT_LOG));
  }

  async build(parent: string | undefined, id: string, fn: (dir: string) => Promise<void>, limits: BuildLimits = {}): Promise<void> {
    if (await this.exists(id)) throw this.alreadyExists(id);
    if (parent !== undefined && !(await this.exists(parent))) throw this.missing(parent);
    if (limits.diskBytes !== undefined) await this.checkDiskLimit();
    const tmp = this.layout.newResultTemp(id);
    let quota: DiskQuota | undefined;
    try {
      quota = await this.prepare(parent, tmp, limits.diskBytes);
      await fn(tmp);
      await this.publish(tmp, id);
    } catch (e) {
      // The step's own quota first: a quota hit is no sign of a full store.
      const error = quota && (await quota.reached().catch(() => false)) ? new DiskLimitError(limits.diskBytes!, { cause: e }) : await storeFullOr(e, this);
      // The step's error is the one to report; a temp that cannot go now goes at the next init.
      const remove = error instanceof StoreFullError ? this.removeTempAfterFull(tmp) : this.removeTemp(tmp);
      await remove.catch(() => undefined);
      await quota?.release().catch(() => undefined);
      throw error;
    }
    await this.removeTemp(tmp);
    await quota?.release();
  }

  async checkDiskLimit(): Promise<void> {
    const problem = await this.diskLimitProblem();
    if (problem !== undefined) throw new DiskLimitUnsupportedError(`the ${this.kind} store at ${this.root} cannot hold a step to a disk limit: ${problem}`);
  }

  /** Why this store cannot hold builds to a disk limit; undefined when it can. */
  protected diskLimitProblem(): Promise<string | undefined> {
    return Promise.resolve('it keeps plain directories without quotas; a disk limit needs the btrfs, xfs, zfs or overlayfs (on XFS) store');
  }

  /** Results hold their whole root filesystem; layered drivers mount it instead. */
  async withRootfs<T>(id: string, fn: (rootfs: string) => Promise<T>): Promise<T> {
    if (!(await this.exists(id))) throw this.missing(id);
    return fn(join(this.layout.result(id), 'rootfs'));
  }

  cache(name: string, user: User, domain?: string): Promise<CacheView> {
    return this.caches.view(name, user, domain);
  }

  deleteCache(name: string, domain?: string): Promise<void> {
    return this.caches.delete(name, domain);
  }

  df(): Promise<FreeSpace> {
    return freeSpace(this.root);
  }

  /** Renames `tmp` to `id`'s result: a rename onto a result (never empty) fails. */
  protected async publishByRename(tmp: string, id: string): Promise<void> {
    try {
      await rename(tmp, this.layout.result(id));
    } catch (e) {
      const code = errorCode(e);
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw this.alreadyExists(id);
      throw e;
    }
  }

  /**
   * Moves `id`'s result into result-tmp/ so that it disappears at once rather than file by
   * file; resolves to where it went, or undefined if there was no such result.
   */
  protected async unpublish(id: string): Promise<string | undefined> {
    const garbage = this.layout.newResultTemp(id);
    try {
      await rename(this.layout.result(id), garbage);
      return garbage;
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Makes the space of removed files usable now, where the filesystem defers it. */
  protected async reclaimSpace(): Promise<void> {}

  /** Removes the temp of a build that failed on a full store: the next one needs the room now. */
  protected async removeTempAfterFull(temp: string): Promise<void> {
    await this.removeTemp(temp);
    await this.reclaimSpace();
  }

  /** Removes a temp, unmounting first whatever is mounted in it. */
  protected async removeTemp(temp: string): Promise<void> {
    await unmountAllUnder(temp);
    await this.trees.remove(temp);
  }

  protected alreadyExists(id: string): Error {
    return new Error(`the ${this.kind} store at ${this.root} already has a result ${id}`);
  }

  protected missing(id: string): Error {
    return new Error(`the ${this.kind} store at ${this.root} has no result ${id}`);
  }
}
