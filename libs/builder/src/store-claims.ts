/**
 * What one process claims on a store that others share (docs/engine.md, "Many processes
 * on one store"): leases on the snapshots its builds stand on (in its lease file), and
 * the lock on a step it runs (in the metadata DB), both under its owner token.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledError } from '@cairn/sandbox';
import { ownerToken, parseOwner, type Store } from '@cairn/store';
import { LeaseFiles } from './lease-files.js';
import type { LockHolder, MetadataDb, SnapshotRecord } from './metadata-db.js';

/** Waits between looks at another process's lock: short at first, for short steps. */
const FIRST_WAIT_MS = 20;
const LONGEST_WAIT_MS = 250;

/**
 * Leases, counted within the process: this process's lease file (lease-files.ts) says
 * `+ID` while any build here stands on the snapshot, from the first take to the last
 * release.
 */
export class Leases {
  private readonly held = new Map<string, { count: number; ready: Promise<void> }>();
  readonly owner: string;
  private readonly files: LeaseFiles;

  constructor(
    private readonly db: MetadataDb,
    leaseDir: string,
  ) {
    this.files = new LeaseFiles(leaseDir);
    this.owner = this.files.owner;
  }

  /**
   * Takes a lease now (a deletion cannot start after this); `ready` then waits for a
   * deletion that had already started.
   */
  take(id: string): void {
    const lease = this.held.get(id);
    if (lease !== undefined) {
      lease.count++;
      return;
    }
    // The append first, then the look at the lock: see LeaseFiles.
    this.files.add(id);
    const deleting = this.db.lockHolder(id)?.purpose === 'delete';
    const ready = deleting ? this.whileLocked(id, 'delete') : Promise.resolve();
    ready.catch(() => undefined);
    this.held.set(id, { count: 1, ready });
  }

  /** Resolves once no live process is deleting `id` (then it is either whole or gone). */
  async ready(id: string, signal: AbortSignal | undefined): Promise<void> {
    const lease = this.held.get(id);
    if (lease === undefined) return;
    await abortable(lease.ready, signal);
  }

  release(ids: readonly string[]): void {
    const free: string[] = [];
    for (const id of ids) {
      const lease = this.held.get(id);
      if (lease === undefined) continue;
      if (--lease.count === 0) {
        this.held.delete(id);
        free.push(id);
      }
    }
    this.files.remove(free, this.held.size === 0);
  }

  /** A live process (this one too) with a lease on `id`, if any. */
  holderOf(id: string): string | undefined {
    return this.files.holders(id)[0];
  }

  /**
   * Locks `id` for deletion by this process, unless a live process holds its lock or a
   * lease on it; resolves to who stands in the way. The lock is committed before the
   * leases are read: a build that took its lease before then is seen, and one that takes
   * it after sees the lock and waits (`ready`).
   */
  lockForDelete(id: string): LockHolder | undefined {
    const blocker = this.db.tryLock(id, this.owner, 'delete');
    if (blocker !== undefined) return blocker;
    const leaser = this.holderOf(id);
    if (leaser === undefined) return undefined;
    this.db.unlock(id, this.owner);
    return { owner: leaser, purpose: 'build' };
  }

  /**
   * The least recently used leaf last used before `before` that no live process holds,
   * locked for deletion by this process (the caller deletes it, then unlocks it).
   */
  lockOldestLeaf(before: number): SnapshotRecord | undefined {
    const skip = this.files.leased();
    for (;;) {
      const leaf = this.db.lockOldestLeaf(before, this.owner, skip);
      if (leaf === undefined) return undefined;
      // Leased between the listing and the lock: leave it, take the next.
      if (this.holderOf(leaf.id) === undefined) return leaf;
      this.db.unlock(leaf.id, this.owner);
      skip.add(leaf.id);
    }
  }

  /** Ends this process's leases for good (the Builder is closing). */
  close(): void {
    this.files.close();
  }

  private async whileLocked(id: string, purpose: LockHolder['purpose']): Promise<void> {
    for (let wait = FIRST_WAIT_MS; this.db.lockHolder(id)?.purpose === purpose; wait = Math.min(2 * wait, LONGEST_WAIT_MS)) {
      await sleep(wait);
    }
  }
}

/**
 * Takes the lock on step `id` so that one process builds it, or waits until another
 * process that holds it lets go. Resolves to true once the lock is this process's (the
 * caller builds, then calls `db.unlock`), or false once the step is published, by
 * whichever process. A holder that dies lets the next waiter in.
 */
export async function lockStep(db: MetadataDb, store: Store, id: string, signal: AbortSignal, onWait: (holder: LockHolder) => void): Promise<boolean> {
  const owner = ownerToken();
  let told = false;
  // The caller has just looked in the store (and looks again once it holds the lock), so
  // the store is asked here only after a wait.
  for (let wait = FIRST_WAIT_MS; ; wait = Math.min(2 * wait, LONGEST_WAIT_MS)) {
    if (signal.aborted) throw new CancelledError();
    // A look before the write: waiters poll, and most looks find the holder still there.
    const holder = db.lockHolder(id) ?? db.tryLock(id, owner, 'build');
    if (holder === undefined) return true;
    if (!told && holder.purpose === 'build') {
      told = true;
      onWait(holder);
    }
    await abortable(sleep(wait), signal);
    if (await store.exists(id)) return false;
  }
}

/** The pid in an owner token, for messages. */
export function pidOf(owner: string): string {
  return String(parseOwner(owner)?.pid ?? owner);
}

async function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) throw new CancelledError();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new CancelledError());
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}
