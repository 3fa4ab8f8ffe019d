import type { User } from '@cairn/spec';
import type { BuildLimits } from './disk-limit.js';

/**
 * A snapshot store keeps one filesystem snapshot per step ID.
 *
 * A snapshot moves through three states: building (a temporary directory only the
 * builder sees, as containerd's active snapshot from Prepare), published (a read-only
 * result under its ID, as a committed snapshot) and gone (Remove). The engine uses a
 * store like this:
 *
 *     await store.init();                                   // after a crash: clean up
 *     if (!(await store.exists(id))) {
 *       await store.build(parentId, id, async (dir) => {    // dir/rootfs = clone of parent
 *         await runStepIn(join(dir, 'rootfs'));             // and dir/log, dir/env.json
 *       });                                                 // resolves once published
 *     }
 *     for await (const chunk of store.log(id)) replay(chunk);
 *     await store.withRootfs(id, async (rootfs) => readFilesFrom(rootfs));  // a view
 *
 * `build` publishes atomically: either the whole result appears under `id`, or (when
 * `fn` throws, the process dies, or the disk fills) nothing does, and `init` removes
 * what a dead process left behind. Only `rootfs/` is cloned from the parent; the files
 * the builder writes beside it (RESULT_LOG, RESULT_METADATA) are the result's own, and
 * are read back with `log` and `metadata`, never by path: a driver may have to mount
 * the result first, and does so without blocking.
 *
 * Caches are named, shared, writable directories (opam downloads, apt archives). A step
 * gets its own copy-on-write view; when it releases the view with `commit`, the view
 * replaces the shared cache only if nobody else committed since the view was taken
 * (a generation check), otherwise it is discarded. A cache belongs to a trust domain
 * (a cluster client, or a pool of clients the operator lets share): cache `npm` of one
 * domain is a different cache from `npm` of another, and from the unscoped `npm` that a
 * build without a domain (`cairn build`) uses.
 */
/** The step's output log, which a build writes beside `rootfs` in its `dir`. */
export const RESULT_LOG = 'log';
/** The result's metadata (a base image's env, as JSON), which a build writes beside `rootfs`. */
export const RESULT_METADATA = 'env.json';

export interface Store {
  /** Driver name, as in `--store NAME:PATH`. */
  readonly kind: string;
  /** The directory (or dataset) the store lives in. */
  readonly root: string;
  /**
   * A host directory belonging to this store, where the engine keeps its metadata
   * database: the root itself for directory stores, the root dataset's mount point for ZFS.
   */
  readonly hostDir: string;

  /** Create the layout if needed and remove leftovers of a crash: temp snapshots, cache views. */
  init(): Promise<void>;

  /** Whether a published result exists for `id`. */
  exists(id: string): Promise<boolean>;

  /** What the build of published result `id` wrote to `dir/env.json`; undefined when it wrote none. */
  metadata(id: string): Promise<string | undefined>;

  /** What the build of published result `id` wrote to `dir/log`, from its start; empty when it wrote none. */
  log(id: string): AsyncIterable<Uint8Array>;

  /**
   * Clone `parent`'s rootfs (or start from an empty one when `parent` is undefined) into
   * a fresh temporary directory `dir` (`dir/rootfs` is the filesystem), run `fn(dir)`,
   * then publish `dir` atomically as `id`. If `fn` throws, the temp is deleted and the
   * error rethrown. Building an `id` that already exists is an error.
   *
   * With `limits.diskBytes`, the temp is held to a quota while `fn` writes: a build that
   * fails having used it up fails with DiskLimitError instead. A store that cannot hold
   * one refuses with DiskLimitUnsupportedError (checkDiskLimit) before anything runs.
   */
  build(parent: string | undefined, id: string, fn: (dir: string) => Promise<void>, limits?: BuildLimits): Promise<void>;

  /**
   * ZFS stores only: publish result `id` from `file`, a `zfs send` stream of one snapshot of
   * a dataset laid out as a result (a base image's dataset stream, docs/zfs.md), as `build`
   * would have made it. Receiving an `id` that already exists is an error.
   */
  receive?(id: string, file: string): Promise<void>;

  /**
   * Throws DiskLimitUnsupportedError, naming the store and why, when its builds cannot be
   * held to a disk limit: its kind has no quotas, or its filesystem has them off.
   */
  checkDiskLimit(): Promise<void>;

  /** Run `fn` with a path to `id`'s complete root filesystem (mounted read-only when layered). */
  withRootfs<T>(id: string, fn: (rootfs: string) => Promise<T>): Promise<T>;

  /** Delete a published result. Deleting a missing ID is not an error. */
  delete(id: string): Promise<void>;

  /**
   * A copy-on-write view of shared cache `name` of trust domain `domain` (none: unscoped),
   * created empty and owned by `user` the first time.
   */
  cache(name: string, user: User, domain?: string): Promise<CacheView>;

  /** Delete a shared cache (views in use keep working). */
  deleteCache(name: string, domain?: string): Promise<void>;

  /** Free space where the store writes. */
  df(): Promise<FreeSpace>;
}

export interface CacheView {
  /** The directory to mount at the cache's target. */
  readonly path: string;
  /**
   * Give the view back: with `commit`, it becomes the shared cache unless another view
   * was committed since this one was taken; without, it is discarded.
   */
  release(commit: boolean): Promise<void>;
}

export interface FreeSpace {
  readonly bytesFree: number;
  readonly bytesTotal: number;
  readonly inodesFree: number;
  readonly inodesTotal: number;
}

/** The store has no room left: the step fails with this, and nothing is published. */
export class StoreFullError extends Error {
  override readonly name = 'StoreFullError';
}
