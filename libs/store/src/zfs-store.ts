import { chown, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { User } from '@cairn/spec';
import { OnceReleasedCacheView } from './cache-generations.js';
import { DiskLimitError, type BuildLimits } from './disk-limit.js';
import { errorCode } from './errno.js';
import { cacheKey, checkId, ownedByLiveProcess, tempName } from './layout.js';
import { storeFullOr } from './store-full.js';
import { readLogFile, readMetadataFile } from './result-files.js';
import { RESULT_LOG, RESULT_METADATA, StoreFullError, type CacheView, type FreeSpace, type Store } from './store.js';
import { hasDependentClones, isBusyError, isExistsError, isMissingError, Zfs, ZfsCommandError, type ZfsCommands } from './zfs.js';
import { ResultMounts, withLock } from './zfs-mounts.js';

export interface ZfsStoreOptions {
  /** The pool the store lives in. */
  readonly pool: string;
  /** The dataset holding the store; `POOL/cairn` by default. Created by `init` if missing. */
  readonly root?: string;
  /** Where `root` is mounted (its `mountpoint`, which every dataset under it inherits); `/ROOT` by default. */
  readonly mountRoot?: string;
  /**
   * Child datasets of every result, snapshotted and cloned with it and mounted at
   * `dir/NAME` next to `dir/rootfs`: the macOS sandbox keeps `home` and `brew` there.
   */
  readonly children?: readonly string[];
  /**
   * Unmount each result (and its children) once published and mount it only while it is
   * used (default), so that thousands of results do not mean thousands of
   * mounts. The price: a result's mountpoint is empty except while `withRootfs`, `log`
   * or `metadata` use it, and they mount only the result itself, not its child datasets.
   */
  readonly unmountResults?: boolean;
  /**
   * Mount results on demand and unmount them once idle this many milliseconds (see
   * zfs-mounts.ts), so that a build's next steps and cache hits find them mounted, and
   * results are published with `canmount=noauto`, so that `zfs mount -a`
   * (at boot) leaves them alone. `init` takes up results a crashed process left mounted.
   * Takes precedence over `unmountResults`. `--store zfs:...` uses this
   * (ZFS_IDLE_UNMOUNT_MS).
   */
  readonly idleUnmountMs?: number;
  /** Where `zfs` and `zpool` are; looked up on PATH by default. */
  readonly commands?: ZfsCommands;
}

/**
 * The options for a `--store zfs:POOL[/DATASET]` value: the store lives in DATASET
 * (`POOL/cairn` when only the pool is named), mounted at `/POOL/DATASET`.
 */
export function zfsStoreOptions(text: string): ZfsStoreOptions {
  const trimmed = text.replace(/\/+$/, '');
  const slash = trimmed.indexOf('/');
  const pool = slash < 0 ? trimmed : trimmed.slice(0, slash);
  if (pool === '') throw new Error(`${JSON.stringify(text)} names no ZFS pool: use POOL or POOL/DATASET`);
  return slash < 0 ? { pool } : { pool, root: trimmed };
}

/** How long `--store zfs:...` keeps an unused result mounted: a build's next steps find it mounted. */
export const ZFS_IDLE_UNMOUNT_MS = 30_000;

/** More than the room a write that failed on the quota leaves, less than a step's limit. */
const QUOTA_PROBE_BYTES = 1024 * 1024;

/** The snapshot that is a result's or a cache's published state. */
const SNAP = 'snap';
const CHILD = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/**
 * Results are ZFS datasets `ROOT/result/<id>` whose snapshot `@snap` is the published
 * state (what builds clone). A build clones its parent's snapshot (or creates an empty
 * dataset) at `ROOT/result-tmp/<temp>`, runs the step on its mountpoint, snapshots it
 * (`-r`: with its child datasets, atomically) and renames it into `result/`: a rename
 * is atomic and fails if the result exists. A failed build destroys the temp.
 *
 * Clones pin their origin: a result that others were built from cannot be deleted
 * before them (`delete` says so), which is what leaf-first pruning does anyway.
 *
 * Caches are datasets `ROOT/cache/<key>` (layout.ts cacheKey) with `@snap`; a view is a clone of it
 * in `ROOT/cache-tmp/`. Committing a view checks that `@snap` is still the snapshot the
 * view was cloned from (its GUID: every snapshot gets a new one), then promotes the view
 * (it takes over the cache's snapshots, and the other views still in use with them),
 * destroys the old cache dataset, renames the view into its place and snapshots it. The
 * check and the swap hold a lock per cache in this process; two processes committing
 * views of one cache at the same instant are not serialised.
 *
 * Temp names start with the pid of their maker, so `init` destroys only the leftovers
 * of dead processes (as layout.ts does for the other drivers).
 *
 * A disk limit is the temp's `quota`: what the temp and its child datasets hold that
 * they do not share with the snapshot they were cloned from (a clone's `used`). The
 * published result keeps the quota; nothing writes there any more.
 */
export class ZfsStore implements Store {
  readonly kind = 'zfs';
  /** The root dataset. */
  readonly root: string;
  readonly pool: string;
  readonly mountRoot: string;
  get hostDir(): string {
    return this.mountRoot;
  }
  private readonly children: readonly string[];
  private readonly unmountResults: boolean;
  /** Results are unmounted after a grace (idleUnmountMs), not as soon as their last user leaves. */
  private readonly onDemand: boolean;
  private readonly mounts: ResultMounts;
  private readonly zfs: Zfs;
  private readonly results: string;
  private readonly resultTemps: string;
  private readonly caches: string;
  private readonly cacheTemps: string;
  /** Deleted caches that views in use still pinned when deleteCache tried to destroy them. */
  private readonly pinnedGarbage = new Set<string>();

  constructor(options: ZfsStoreOptions) {
    this.pool = options.pool;
    this.root = options.root ?? `${options.pool}/cairn`;
    if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/.test(this.pool)) throw new Error(`${JSON.stringify(this.pool)} is not a ZFS pool name`);
    if (this.root !== this.pool && !this.root.startsWith(`${this.pool}/`)) throw new Error(`the ZFS store's dataset ${this.root} is not in pool ${this.pool}`);
    if (this.root.split('/').some((part) => !/^[A-Za-z0-9_.:-]+$/.test(part) || part === '.' || part === '..')) {
      throw new Error(`${JSON.stringify(this.root)} is not a ZFS dataset name`);
    }
    const mountRoot = options.mountRoot ?? `/${this.root}`;
    if (!isAbsolute(mountRoot)) throw new Error(`the ZFS store's mount root ${mountRoot} is not an absolute path`);
    this.mountRoot = resolve(mountRoot);
    this.children = options.children ?? [];
    for (const child of this.children) {
      if (!CHILD.test(child) || child === 'rootfs')
        throw new Error(`${JSON.stringify(child)} cannot be a child dataset of results: use letters, digits, "_", "-" and "." (not first), and not "rootfs"`);
    }
    if (options.idleUnmountMs !== undefined && !(options.idleUnmountMs > 0))
      throw new Error(`the ZFS store's idleUnmountMs must be a positive number of milliseconds, not ${options.idleUnmountMs}`);
    this.onDemand = options.idleUnmountMs !== undefined;
    this.unmountResults = this.onDemand || (options.unmountResults ?? true);
    this.zfs = new Zfs(options.commands);
    const zfs = this.zfs;
    const children = this.children;
    this.mounts = new ResultMounts(this.mountRoot, options.idleUnmountMs ?? 0, {
      mount: (dataset) => zfs.mount(dataset),
      // The kernel refuses to unmount a filesystem with others mounted beneath it.
      unmount: async (dataset) => {
        for (const child of children) await zfs.unmount(`${dataset}/${child}`);
        await zfs.unmount(dataset);
      },
      unmountSync: (dataset) => {
        for (const child of children) zfs.unmountSync(`${dataset}/${child}`);
        zfs.unmountSync(dataset);
      },
      isBusy: isBusyError,
    });
    this.results = `${this.root}/result`;
    this.resultTemps = `${this.root}/result-tmp`;
    this.caches = `${this.root}/cache`;
    this.cacheTemps = `${this.root}/cache-tmp`;
  }

  async init(): Promise<void> {
    const health = await this.zfs.poolHealth(this.pool);
    if (health === undefined) throw new Error(`the zfs store ${this.root} needs ZFS pool ${this.pool}, and there is no such pool`);
    if (health !== 'ONLINE' && health !== 'DEGRADED') throw new Error(`ZFS pool ${this.pool} is ${health}: the zfs store ${this.root} cannot use it`);
    const mountpoint = await this.zfs.mountpoint(this.root);
    if (mountpoint === undefined) {
      await this.zfs.create(this.root, { parents: true, mountpoint: this.mountRoot });
    } else if (mountpoint !== this.mountRoot) {
      throw new Error(`ZFS dataset ${this.root} is mounted at ${mountpoint}, not at ${this.mountRoot}: set its mountpoint or the store's mount root`);
    }
    const present = mountpoint === undefined ? [] : await this.zfs.children([this.root]);
    for (const dataset of [this.results, this.resultTemps, this.caches, this.cacheTemps]) {
      if (!present.includes(dataset)) await this.zfs.create(dataset);
    }
    // A view pins the deleted cache it came from: destroy in rounds while that helps.
    let leftovers = (await this.zfs.children([this.resultTemps, this.cacheTemps])).filter(
      (dataset) => !ownedByLiveProcess(dataset.slice(dataset.lastIndexOf('/') + 1)),
    );
    while (leftovers.length > 0) {
      const pinned: string[] = [];
      for (const dataset of leftovers) {
        try {
          await this.zfs.destroy(dataset, { recursive: true });
        } catch (e) {
          if (!hasDependentClones(e)) throw e;
          pinned.push(dataset);
        }
      }
      // What is still pinned belongs to views of live processes: the next init gets it.
      if (pinned.length === leftovers.length) break;
      leftovers = pinned;
    }
    if (this.onDemand) {
      // Results a crashed process left mounted (or another one is using): unmounted once idle.
      const prefix = `${this.results}/`;
      for (const dataset of await this.zfs.mounted()) {
        if (dataset.startsWith(prefix) && !dataset.slice(prefix.length).includes('/')) this.mounts.adopt(dataset);
      }
    }
  }

  exists(id: string): Promise<boolean> {
    return this.zfs.exists(this.result(id));
  }

  async metadata(id: string): Promise<string | undefined> {
    const result = await this.open(id);
    if (result === undefined) return undefined;
    try {
      return await readMetadataFile(join(result.dir, RESULT_METADATA));
    } finally {
      await result.leave();
    }
  }

  async *log(id: string): AsyncGenerator<Uint8Array> {
    const result = await this.open(id);
    if (result === undefined) return;
    try {
      yield* readLogFile(join(result.dir, RESULT_LOG));
    } finally {
      await result.leave();
    }
  }

  /** Unmounts every result this process mounted and nobody uses now, without waiting for their grace. */
  unmountIdle(): void {
    this.mounts.unmountIdle();
  }

  async build(parent: string | undefined, id: string, fn: (dir: string) => Promise<void>, limits: BuildLimits = {}): Promise<void> {
    if (await this.exists(id)) throw this.alreadyExists(id);
    if (parent !== undefined && !(await this.exists(parent))) throw this.missing(parent);
    const tmp = `${this.resultTemps}/${tempName(id)}`;
    const dir = this.mountpointOf(tmp);
    const { diskBytes } = limits;
    let limited = false;
    try {
      if (parent === undefined) {
        await this.zfs.create(tmp);
        for (const child of this.children) await this.zfs.create(`${tmp}/${child}`);
        await mkdir(join(dir, 'rootfs'));
      } else {
        const origin = this.result(parent);
        await this.zfs.clone(`${origin}@${SNAP}`, tmp);
        for (const child of this.children) await this.zfs.clone(`${origin}/${child}@${SNAP}`, `${tmp}/${child}`);
        // Only the rootfs (and the child datasets) are inherited: the parent's log is its own.
        for (const entry of await readdir(dir)) {
          if (entry !== 'rootfs' && !this.children.includes(entry)) await rm(join(dir, entry), { recursive: true, force: true });
        }
      }
      if (diskBytes !== undefined) {
        await this.zfs.set('quota', String(diskBytes), [tmp]);
        limited = true;
      }
      await fn(dir);
      await this.zfs.snapshot(tmp, SNAP, { recursive: true });
      await this.publish(tmp, id);
    } catch (e) {
      // The step's own quota first: a quota hit is no sign of a full store.
      if (limited && (await this.quotaReached(dir))) {
        await this.zfs.destroy(tmp, { recursive: true }).catch(() => undefined);
        throw new DiskLimitError(diskBytes!, { cause: e });
      }
      throw await this.discard(tmp, e);
    }
  }

  /** Every store of this kind can hold a build to a disk limit: ZFS has quotas on every dataset. */
  checkDiskLimit(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Whether the temp mounted at `dir` has used up its quota: a write there fails with
   * EDQUOT now (a full pool says ENOSPC). Not `used`: it lags by a transaction group, and
   * zfs-fuse cannot end one on demand (no `zpool sync`).
   */
  private async quotaReached(dir: string): Promise<boolean> {
    const probe = join(dir, '.cairn-disk-limit-probe');
    try {
      await writeFile(probe, Buffer.alloc(QUOTA_PROBE_BYTES));
      return false;
    } catch (e) {
      return errorCode(e) === 'EDQUOT';
    } finally {
      await rm(probe, { force: true });
    }
  }

  /**
   * Publishes result `id` from a `zfs send` stream in `file`: the full stream of one
   * snapshot of a dataset laid out as a result (`rootfs/`, and `log` if any), such as a
   * base image's `base-image/NAME@DIGEST` (docs/zfs.md). It is received into a temp, its
   * snapshot becomes `@snap` and it is renamed into place as a build is, while the store
   * is in use.
   */
  async receive(id: string, file: string): Promise<void> {
    if (await this.exists(id)) throw this.alreadyExists(id);
    const tmp = `${this.resultTemps}/${tempName(id)}`;
    try {
      await this.zfs.receive(tmp, file);
      const snapshots = await this.zfs.snapshots(tmp);
      if (snapshots.length !== 1)
        throw new Error(`the ZFS stream in ${file} holds ${snapshots.length} snapshots, not one: send a single snapshot (zfs send DATASET@NAME)`);
      await this.zfs.rename(snapshots[0]!, `${tmp}@${SNAP}`);
      await this.publish(tmp, id);
    } catch (e) {
      throw await this.discard(tmp, e);
    }
  }

  /** Destroys the temp of a failed build or receive; the error to throw. */
  private async discard(tmp: string, e: unknown): Promise<unknown> {
    const error = await this.storeFullOr(e);
    // The step's error is the one to report; a temp that cannot go now goes at the next init.
    await this.zfs.destroy(tmp, { recursive: true }).catch(() => undefined);
    return error;
  }

  /** Renames the snapshotted temp `tmp` into place as result `id`, which fails if it exists. */
  private async publish(tmp: string, id: string): Promise<void> {
    const target = this.result(id);
    // Not mounted at boot; clones of it still are (canmount is not inherited).
    if (this.onDemand) await this.zfs.set('canmount', 'noauto', [tmp, ...this.children.map((child) => `${tmp}/${child}`)]);
    const rename = async () => {
      try {
        await this.zfs.rename(tmp, target);
      } catch (e) {
        if (isExistsError(e)) throw this.alreadyExists(id);
        throw e;
      }
    };
    if (!this.unmountResults) return rename();
    // The rename mounts the result: readers wait for it, then it is unmounted once idle
    // (at once without a grace; the engine reads the log next, which the grace spares a mount).
    await this.mounts.publish(target, async () => {
      await rename();
      // Uses mount only the result itself: its children go at once.
      if (this.onDemand) for (const child of this.children) await this.zfs.unmount(`${target}/${child}`);
    });
  }

  async withRootfs<T>(id: string, fn: (rootfs: string) => Promise<T>): Promise<T> {
    if (!(await this.exists(id))) throw this.missing(id);
    const dataset = this.result(id);
    const rootfs = join(this.mountpointOf(dataset), 'rootfs');
    if (!this.unmountResults) return fn(rootfs);
    return this.mounts.use(dataset, () => fn(rootfs));
  }

  async delete(id: string): Promise<void> {
    const dataset = this.result(id);
    const clones = await this.zfs.clones(`${dataset}@${SNAP}`);
    // No snapshot, no result: publishing renames a temp only once it is snapshotted.
    if (clones === undefined) return;
    if (clones.length > 0) throw this.hasDependents(id, clones);
    // Destroying unmounts it: no idle unmount is due any more.
    this.mounts.forget(dataset);
    try {
      await this.zfs.destroy(dataset, { recursive: true });
    } catch (e) {
      if (hasDependentClones(e)) throw this.hasDependents(id, (await this.zfs.clones(`${dataset}@${SNAP}`)) ?? []);
      throw e;
    }
  }

  async cache(name: string, user: User, domain?: string): Promise<CacheView> {
    if (user.kind !== 'unix')
      throw new Error(`cache ${JSON.stringify(name)}: this store holds Unix filesystems, so a cache belongs to a unix user, not to ${user.name}`);
    const key = cacheKey(name, domain);
    const dataset = `${this.caches}/${key}`;
    for (;;) {
      const guid = await this.zfs.guid(`${dataset}@${SNAP}`);
      if (guid === undefined) {
        // A commit swaps the cache in steps, without `@snap` for a moment: creating it
        // then would take the place the swap renames the view into. Look again under its lock.
        await withLock(dataset, async () => {
          if ((await this.zfs.guid(`${dataset}@${SNAP}`)) === undefined) await this.createCache(dataset, user.uid, user.gid);
        });
        continue;
      }
      const view = `${this.cacheTemps}/${tempName(key)}`;
      try {
        await this.zfs.clone(`${dataset}@${SNAP}`, view);
      } catch (e) {
        // A commit or a delete replaced the snapshot meanwhile: look again.
        if (isMissingError(e)) continue;
        throw e;
      }
      return new OnceReleasedCacheView(this.mountpointOf(view), (commit) => this.release(dataset, guid, view, commit));
    }
  }

  /** Moves the cache out of sight at once, then destroys it unless views in use still pin it (init gets it then). */
  async deleteCache(name: string, domain?: string): Promise<void> {
    const dataset = `${this.caches}/${cacheKey(name, domain)}`;
    const garbage = `${this.cacheTemps}/${tempName('deleted')}`;
    await withLock(dataset, async () => {
      try {
        await this.zfs.rename(dataset, garbage);
      } catch (e) {
        if (isMissingError(e)) return;
        throw e;
      }
      await this.destroyGarbage(garbage);
    });
  }

  /** Destroys a deleted cache, or keeps it for the release of the last view that pins it. */
  private async destroyGarbage(garbage: string): Promise<void> {
    try {
      await this.zfs.destroy(garbage, { recursive: true });
      this.pinnedGarbage.delete(garbage);
    } catch (e) {
      if (!hasDependentClones(e)) throw e;
      this.pinnedGarbage.add(garbage);
    }
  }

  /** ZFS reports no inode counts: it allocates them on demand. */
  async df(): Promise<FreeSpace> {
    const { used, available } = await this.zfs.space(this.root);
    return { bytesFree: available, bytesTotal: used + available, inodesFree: 0, inodesTotal: 0 };
  }

  private async createCache(dataset: string, uid: number, gid: number): Promise<void> {
    try {
      await this.zfs.create(dataset);
    } catch (e) {
      // Another process is creating it, or one died before its snapshot: finish the job.
      if (!isExistsError(e)) throw e;
    }
    await chown(this.mountpointOf(dataset), uid, gid);
    try {
      await this.zfs.snapshot(dataset, SNAP);
    } catch (e) {
      if (!isExistsError(e)) throw e;
    }
  }

  private async release(dataset: string, guid: string, view: string, commit: boolean): Promise<void> {
    if (!commit) return this.destroyView(view);
    await withLock(dataset, async () => {
      if ((await this.zfs.guid(`${dataset}@${SNAP}`)) !== guid) {
        // Another view was committed (or the cache deleted) since this one was taken: it loses.
        await this.destroyView(view);
        return;
      }
      // The view takes over the cache's snapshots; the old cache becomes a clone of it.
      await this.zfs.promote(view);
      await this.zfs.destroy(dataset);
      await this.zfs.rename(view, dataset);
      // The old generation goes once the views still cloned from it are released.
      const old = `${dataset}@old-${guid}`;
      await this.zfs.rename(`${dataset}@${SNAP}`, old);
      await this.zfs.snapshot(dataset, SNAP);
      await this.zfs.destroy(old, { defer: true });
    });
  }

  /** A view that goes may have been the last to pin a deleted cache of this store: that goes too. */
  private async destroyView(view: string): Promise<void> {
    await this.zfs.destroy(view, { recursive: true });
    for (const garbage of [...this.pinnedGarbage]) await this.destroyGarbage(garbage);
  }

  private async storeFullOr(error: unknown): Promise<unknown> {
    if (error instanceof ZfsCommandError && /out of space|quota exceeded/.test(error.stderr)) {
      return new StoreFullError(`the zfs store ${this.root} is full; nothing was published (delete snapshots to make room): ${error.message}`, {
        cause: error,
      });
    }
    // The mount root is the root dataset's mountpoint: statfs there sees the dataset's space.
    return storeFullOr(error, { kind: this.kind, root: this.mountRoot }).catch(() => error);
  }

  /** Result `id`'s directory, mounted until `leave`; undefined when there is no such result. */
  private async open(id: string): Promise<{ dir: string; leave: () => Promise<void> } | undefined> {
    const dataset = this.result(id);
    const dir = this.mountpointOf(dataset);
    if (!this.unmountResults) return { dir, leave: () => Promise.resolve() };
    const leave = await this.mounts.enter(dataset);
    return leave && { dir, leave };
  }

  private result(id: string): string {
    return `${this.results}/${checkId(id)}`;
  }

  private mountpointOf(dataset: string): string {
    return join(this.mountRoot, dataset.slice(this.root.length + 1));
  }

  private alreadyExists(id: string): Error {
    return new Error(`the zfs store ${this.root} already has a result ${id}`);
  }

  private missing(id: string): Error {
    return new Error(`the zfs store ${this.root} has no result ${id}`);
  }

  private hasDependents(id: string, clones: readonly string[]): Error {
    return new Error(
      `cannot delete result ${id} from the zfs store ${this.root}: ${clones.join(', ')} ${clones.length === 1 ? 'is a clone' : 'are clones'} of it; ` +
        'delete those first (ZFS destroys a snapshot only once nothing is cloned from it)',
    );
  }
}
