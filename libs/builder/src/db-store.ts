import { dirname, join } from 'node:path';
import { CancelledError } from '@cairn/sandbox';
import { RESULT_LOG, type BuildLimits, type Store } from '@cairn/store';
import { SnapshotInUseError } from './errors.js';
import { MetadataDb, type LockHolder } from './metadata-db.js';
import { SharedSteps } from './shared-steps.js';
import { StepLog } from './step-log.js';
import { Leases, lockStep } from './store-claims.js';

/**
 * What the engine keeps about a store, as OBuilder's Db_store does: the metadata
 * database (each snapshot's parent and last use, the step locks), identical steps run
 * once for every concurrent requester (SharedSteps), and the leases of running builds,
 * which keep what they stand on from prune and delete, in this process and in others
 * sharing the store. The engine computes step IDs and says how to build a step; this
 * layer decides whether it is built, waited for or taken from the store:
 *
 *     const lease = db.lease();                       // one per build
 *     try {
 *       await lease.hold(id, signal);                 // no prune or delete takes it now
 *       if (!(await db.cached(id))) {                 // a cache hit counts as a use
 *         await db.build(id, parent, signal, steps);  // 'built', or 'published elsewhere'
 *       }
 *     } finally {
 *       lease.release();
 *     }
 */
export class DbStore {
  private readonly steps = new SharedSteps<'built' | 'published elsewhere'>();
  /** Snapshots that running builds stand on, leased: no process prunes or deletes them. */
  private readonly leases: Leases;
  private readonly db: MetadataDb;

  /** The database file is `dbPath` (SQLite); the leases are beside it. */
  constructor(
    readonly store: Store,
    dbPath: string,
  ) {
    this.db = new MetadataDb(dbPath);
    this.leases = new Leases(this.db, join(dirname(dbPath), 'leases'));
  }

  close(): void {
    this.db.close();
    this.leases.close();
  }

  /** The leases of one build: every snapshot it holds stays until `release`. */
  lease(): BuildLease {
    const held: string[] = [];
    return {
      hold: async (id, signal) => {
        held.push(id);
        this.leases.take(id);
        signal?.throwIfAborted();
        await this.leases.ready(id, signal);
      },
      release: () => {
        this.db.flush();
        this.leases.release(held);
      },
    };
  }

  /** Whether `id` is published: a cache hit, which counts as a use. */
  async cached(id: string): Promise<boolean> {
    if (!(await this.store.exists(id))) return false;
    this.db.touch(id);
    return true;
  }

  /**
   * Builds `id` on `parent` once for every requester, in this process (SharedSteps) and
   * in every process sharing the store (the step lock): `steps.work` fills `dir` (rootfs
   * already cloned from `parent`) and writes `log`; each requester follows the log with
   * `steps.follow`. 'published elsewhere': another process (or an older Cairn, which
   * takes no locks) published it first, and it counts as a use.
   */
  async build(id: string, parent: string | undefined, signal: AbortSignal | undefined, steps: StepWork): Promise<'built' | 'published elsewhere'> {
    const outcome = await this.steps.run(
      id,
      signal,
      async (signal, publishLog) => {
        if (!(await lockStep(this.db, this.store, id, signal, steps.waiting))) return 'published elsewhere';
        try {
          // Published between the look and the lock.
          if (await this.store.exists(id)) return 'published elsewhere';
          try {
            const stream = this.store.receive && (await steps.stream?.(signal));
            if (stream) await this.receive(id, stream);
            else {
              await this.store.build(
                parent,
                id,
                async (dir) => {
                  const log = await StepLog.create(join(dir, RESULT_LOG));
                  publishLog(log);
                  try {
                    await steps.work(dir, log, signal);
                  } finally {
                    await log.finish();
                  }
                },
                steps.limits,
              );
            }
          } catch (e) {
            // A process that does not take step locks (an older Cairn) may have published it first.
            if (await this.store.exists(id)) return 'published elsewhere';
            if (signal.aborted) throw new CancelledError();
            throw e;
          }
          this.db.add(id, parent);
          return 'built';
        } finally {
          this.db.unlock(id, this.leases.owner);
        }
      },
      steps.follow,
    );
    if (outcome === 'published elsewhere') this.db.touch(id);
    return outcome;
  }

  private async receive(id: string, stream: ReceivedStream): Promise<void> {
    try {
      await this.store.receive!(id, stream.file);
    } finally {
      await stream.discard();
    }
  }

  /**
   * Deletes a snapshot and everything built on it (children first), unless a running
   * build of any process stands on one of them (SnapshotInUseError).
   */
  async delete(id: string, log: (line: string) => void = () => undefined): Promise<void> {
    const user = this.leases.holderOf(id);
    if (user !== undefined) throw new SnapshotInUseError(id, user);
    for (const child of this.db.children(id)) await this.delete(child, log);
    const blocker = this.leases.lockForDelete(id);
    if (blocker !== undefined) throw new SnapshotInUseError(id, blocker.owner);
    try {
      await this.store.delete(id);
      this.db.remove(id);
    } finally {
      this.db.unlock(id, this.leases.owner);
    }
    log(`removed ${id}`);
  }

  /**
   * Deletes up to `limit` snapshots last used before `before` (ms since the epoch),
   * least recently used leaves first. Deleting a leaf can make its parent a leaf, so the
   * choice is made afresh after each deletion. Snapshots that running builds of any
   * process stand on (leases) or are building or deleting (locks) are kept.
   */
  async prune(before: number, limit: number, log: (line: string) => void = () => undefined): Promise<string[]> {
    const removed: string[] = [];
    while (removed.length < limit) {
      const leaf = this.leases.lockOldestLeaf(before);
      if (!leaf) break;
      try {
        await this.store.delete(leaf.id);
        this.db.remove(leaf.id);
      } finally {
        this.db.unlock(leaf.id, this.leases.owner);
      }
      removed.push(leaf.id);
      log(`removed ${leaf.id} (last used ${new Date(leaf.used).toISOString()})`);
    }
    return removed;
  }

  /** How many snapshots the metadata database records. */
  count(): number {
    return this.db.count();
  }
}

/** The snapshots one build stands on (DbStore.lease). */
export interface BuildLease {
  /** Leases `id` for the build at once, then waits out a deletion of it already under way. */
  hold(id: string, signal: AbortSignal | undefined): Promise<void>;
  /** Ends the build's leases (and writes its deferred last-use times). */
  release(): void;
}

/** How to build one step, for DbStore.build. */
export interface StepWork {
  /** Another process runs this step: this one waits for it. */
  waiting(holder: LockHolder): void;
  /** Fills `dir` (`dir/rootfs` cloned from the parent) and writes the step's output to `log`. */
  work(dir: string, log: StepLog, signal: AbortSignal): Promise<void>;
  /** Follows the log of the step's one run, from its first byte. */
  follow(log: StepLog): Promise<void>;
  /** What the store holds the step's snapshot to while `work` fills it. */
  readonly limits?: BuildLimits;
  /**
   * On a store that receives results (ZFS): a stream to make the result from instead of
   * running `work` (a base image's dataset stream), or undefined to run `work`.
   */
  stream?(signal: AbortSignal): Promise<ReceivedStream | undefined>;
}

/** A `zfs send` stream in a file, discarded once received. */
export interface ReceivedStream {
  readonly file: string;
  discard(): Promise<void>;
}
