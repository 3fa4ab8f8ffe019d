import type { User } from '@cairn/spec';

/**
 * A snapshot store keeps one filesystem snapshot per step ID.
 *
 * A snapshot moves through three states: building (a temporary directory only the
 * builder sees), published (a read-only result under its ID) and gone. The engine uses
 * a store like this:
 *
 *     await store.init();                                   // after a crash: clean up
 *     if (!(await store.exists(id))) {
 *       await store.build(parentId, id, async (dir) => {    // dir/rootfs = clone of parent
 *         await runStepIn(join(dir, 'rootfs'));             // write dir/log etc. as needed
 *       });                                                 // resolves once published
 *     }
 *     await store.withRootfs(id, async (rootfs) => readFilesFrom(rootfs));
 *
 * `build` publishes atomically: either the whole result appears under `id`, or (when
 * `fn` throws, the process dies, or the disk fills) nothing does, and `init` removes
 * what a dead process left behind. Only `rootfs/` is cloned from the parent; any other
 * file in the parent's result (its log) is not carried over.
 *
 * Caches are named, shared, writable directories (opam downloads, apt archives). A step
 * gets its own copy-on-write view; when it releases the view with `commit`, the view
 * replaces the shared cache only if nobody else committed since the view was taken
 * (a generation check), otherwise it is discarded.
 */
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

  /**
   * The published result's directory: it holds the files the builder wrote next to
   * `rootfs` (the log, the base image env). For the root filesystem use `withRootfs`,
   * which layered stores must mount.
   */
  resultDir(id: string): string;

  /**
   * Clone `parent`'s rootfs (or start from an empty one when `parent` is undefined) into
   * a fresh temporary directory `dir` (`dir/rootfs` is the filesystem), run `fn(dir)`,
   * then publish `dir` atomically as `id`. If `fn` throws, the temp is deleted and the
   * error rethrown. Building an `id` that already exists is an error.
   */
  build(parent: string | undefined, id: string, fn: (dir: string) => Promise<void>): Promise<void>;

  /** Run `fn` with a path to `id`'s complete root filesystem (mounted read-only when layered). */
  withRootfs<T>(id: string, fn: (rootfs: string) => Promise<T>): Promise<T>;

  /** Delete a published result. Deleting a missing ID is not an error. */
  delete(id: string): Promise<void>;

  /** A copy-on-write view of shared cache `name`, created empty and owned by `user` the first time. */
  cache(name: string, user: User): Promise<CacheView>;

  /** Delete a shared cache (views in use keep working). */
  deleteCache(name: string): Promise<void>;

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
