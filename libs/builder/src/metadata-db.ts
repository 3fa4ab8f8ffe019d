import { DatabaseSync } from 'node:sqlite';
import { ownerAlive } from '@cairn/store';

/**
 * What the engine knows about each published snapshot: when it was made and last used,
 * and its parent, so that pruning can remove least-recently-used leaves first.
 * SQLite in WAL mode: several `cairn` processes may share one store. Node's built-in
 * SQLite: the CLI loads no native addon.
 *
 * It is also where those processes agree (docs/engine.md, "Many processes on one store"):
 *
 *   - `step_locks`: at most one process builds a step (purpose `build`) or deletes a
 *     snapshot (`delete`) at a time, per owner process (`PID.START`, see ProcessOwner in
 *     @cairn/store). (Leases, taken on every step of every build, are files: lease-files.ts.)
 *
 * Rows of a dead owner count for nothing and are replaced or purged inside the very
 * transaction that finds them, so a crash never blocks anyone and two processes never
 * both take over the same stale lock (BEGIN IMMEDIATE serialises the writers).
 */
export type LockPurpose = 'build' | 'delete';

export interface LockHolder {
  readonly owner: string;
  readonly purpose: LockPurpose;
}

export interface SnapshotRecord {
  readonly id: string;
  readonly parent: string | null;
  /** Milliseconds since the epoch. */
  readonly created: number;
  readonly used: number;
  readonly childCount: number;
}

/** How stale `used` may be before a hit writes it again. */
const USED_RESOLUTION_MS = 60_000;

export class MetadataDb {
  private readonly db: DatabaseSync;

  constructor(path: string) {
    this.db = new DatabaseSync(path, { timeout: 10_000 });
    this.db.exec('PRAGMA journal_mode = WAL');
    // In WAL mode NORMAL never corrupts the database; a power cut may lose the last
    // `used` updates, which only makes pruning slightly less exact. Saves an fsync per hit.
    this.db.exec('PRAGMA synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS snapshots (
        id          TEXT PRIMARY KEY,
        parent      TEXT,
        created     INTEGER NOT NULL,
        used        INTEGER NOT NULL,
        child_count INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS snapshots_lru ON snapshots (child_count, used);
      CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots (parent);
      CREATE TABLE IF NOT EXISTS step_locks (
        id      TEXT PRIMARY KEY,
        owner   TEXT NOT NULL,
        purpose TEXT NOT NULL,
        taken   INTEGER NOT NULL
      );
    `);
  }

  /**
   * Takes the lock on step `id` for `owner`, unless a live process holds it (a stale lock
   * is taken over). Resolves to undefined when taken, else to who holds it.
   */
  tryLock(id: string, owner: string, purpose: LockPurpose, now = Date.now()): LockHolder | undefined {
    let blocker: LockHolder | undefined;
    this.transaction(() => {
      const holder = this.lockRow(id);
      if (holder !== undefined && ownerAlive(holder.owner)) {
        blocker = holder;
        return;
      }
      this.db.prepare('INSERT OR REPLACE INTO step_locks (id, owner, purpose, taken) VALUES (?, ?, ?, ?)').run(id, owner, purpose, now);
    });
    return blocker;
  }

  /** Who holds the lock on `id`, if a live process does (a read, for waiting). */
  lockHolder(id: string): LockHolder | undefined {
    const holder = this.lockRow(id);
    return holder !== undefined && ownerAlive(holder.owner) ? holder : undefined;
  }

  unlock(id: string, owner: string): void {
    this.transaction(() => {
      this.db.prepare('DELETE FROM step_locks WHERE id = ? AND owner = ?').run(id, owner);
    });
  }

  private lockRow(id: string): LockHolder | undefined {
    const row = this.db.prepare('SELECT owner, purpose FROM step_locks WHERE id = ?').get(id) as LockHolder | undefined;
    return row === undefined ? undefined : { owner: row.owner, purpose: row.purpose };
  }

  /** Records a newly published snapshot (a repeat is ignored). */
  add(id: string, parent: string | undefined, now = Date.now()): void {
    this.transaction(() => {
      const inserted = this.db.prepare('INSERT OR IGNORE INTO snapshots (id, parent, created, used) VALUES (?, ?, ?, ?)').run(id, parent ?? null, now, now);
      if (inserted.changes && parent) {
        this.db.prepare('UPDATE snapshots SET child_count = child_count + 1 WHERE id = ?').run(parent);
      }
    });
  }

  /**
   * Marks a snapshot as just used (a cache hit). Hits are recorded together, in one
   * transaction, at the next `flush` (the engine flushes at the end of each build):
   * a cached build should cost one commit, not one per step.
   */
  touch(id: string, now = Date.now()): void {
    this.touched.set(id, now);
  }

  flush(): void {
    if (this.touched.size === 0) return;
    // Prune orders by `used` to the minute at best (builds take longer than that), so a hit
    // within a minute of the last changes nothing: a rebuild that only hits writes no page,
    // and closing the database then has no log to checkpoint.
    const update = this.db.prepare('UPDATE snapshots SET used = ? WHERE id = ? AND used < ?');
    this.transaction(() => {
      for (const [id, when] of this.touched) update.run(when, id, when - USED_RESOLUTION_MS);
    });
    this.touched.clear();
  }

  private readonly touched = new Map<string, number>();

  get(id: string): SnapshotRecord | undefined {
    this.flush();
    const row = this.db.prepare('SELECT id, parent, created, used, child_count AS childCount FROM snapshots WHERE id = ?').get(id);
    return row ? { ...(row as unknown as SnapshotRecord) } : undefined;
  }

  children(id: string): string[] {
    return (this.db.prepare('SELECT id FROM snapshots WHERE parent = ?').all(id) as { id: string }[]).map((r) => r.id);
  }

  /**
   * The least recently used leaf last used before `before`, not in `skip` (the leased
   * ones) and not locked by a live process, locked for deletion by `owner` in the same
   * transaction; the caller deletes it and then calls `unlock`. Dead owners' locks are
   * purged on the way.
   */
  lockOldestLeaf(before: number, owner: string, skip: ReadonlySet<string> = new Set(), now = Date.now()): SnapshotRecord | undefined {
    this.flush();
    let leaf: SnapshotRecord | undefined;
    this.transaction(() => {
      this.purgeDeadOwners();
      const row = this.db
        .prepare(
          `SELECT id, parent, created, used, child_count AS childCount FROM snapshots s
          WHERE child_count = 0 AND used < ?
            AND s.id NOT IN (SELECT value FROM json_each(?))
            AND NOT EXISTS (SELECT 1 FROM step_locks k WHERE k.id = s.id)
          ORDER BY used, id LIMIT 1`,
        )
        .get(before, JSON.stringify([...skip])) as SnapshotRecord | undefined;
      if (row === undefined) return;
      this.db.prepare('INSERT INTO step_locks (id, owner, purpose, taken) VALUES (?, ?, ?, ?)').run(row.id, owner, 'delete', now);
      leaf = { ...row };
    });
    return leaf;
  }

  private purgeDeadOwners(): void {
    const owners = this.db.prepare('SELECT DISTINCT owner FROM step_locks').all() as { owner: string }[];
    for (const { owner } of owners) {
      if (!ownerAlive(owner)) this.db.prepare('DELETE FROM step_locks WHERE owner = ?').run(owner);
    }
  }

  remove(id: string): void {
    this.flush();
    this.transaction(() => {
      const row = this.db.prepare('SELECT parent FROM snapshots WHERE id = ?').get(id) as { parent: string | null } | undefined;
      if (!row) return;
      this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(id);
      if (row.parent) this.db.prepare('UPDATE snapshots SET child_count = child_count - 1 WHERE id = ?').run(row.parent);
    });
  }

  count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM snapshots').get() as { n: number }).n;
  }

  /** Closing twice is harmless, as it was with better-sqlite3 (callers close in finally blocks). */
  close(): void {
    if (!this.db.isOpen) return;
    this.flush();
    this.db.close();
  }

  /** BEGIN IMMEDIATE: a writer takes the lock up front, so two processes never deadlock upgrading. */
  private transaction(body: () => void): void {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      body();
      this.db.exec('COMMIT');
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }
}
