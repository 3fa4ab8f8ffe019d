import { DatabaseSync } from 'node:sqlite';

/**
 * What the engine knows about each published snapshot: when it was made and last used,
 * and its parent, so that pruning can remove least-recently-used leaves first.
 * SQLite in WAL mode: several `cairn` processes may share one store. Node's built-in
 * SQLite: the CLI loads no native addon.
 */
export interface SnapshotRecord {
  readonly id: string;
  readonly parent: string | null;
  /** Milliseconds since the epoch. */
  readonly created: number;
  readonly used: number;
  readonly childCount: number;
}

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
    `);
  }

  /** Records a newly published snapshot (a repeat is ignored). */
  add(id: string, parent: string | undefined, now = Date.now()): void {
    this.transaction(() => {
      const inserted = this.db
        .prepare('INSERT OR IGNORE INTO snapshots (id, parent, created, used) VALUES (?, ?, ?, ?)')
        .run(id, parent ?? null, now, now);
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
    const update = this.db.prepare('UPDATE snapshots SET used = ? WHERE id = ?');
    this.transaction(() => {
      for (const [id, when] of this.touched) update.run(when, id);
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

  /** The least recently used leaf last used before `before`, skipping `keep`. */
  oldestLeaf(before: number, keep: ReadonlySet<string>): SnapshotRecord | undefined {
    this.flush();
    const rows = this.db
      .prepare('SELECT id, parent, created, used, child_count AS childCount FROM snapshots WHERE child_count = 0 AND used < ? ORDER BY used, id')
      .iterate(before) as unknown as IterableIterator<SnapshotRecord>;
    for (const row of rows) {
      if (!keep.has(row.id)) return row;
    }
    return undefined;
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

  close(): void {
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
