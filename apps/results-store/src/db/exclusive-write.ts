import type { DataSource } from 'typeorm';

const writeQueues = new WeakMap<DataSource, Promise<unknown>>();

/**
 * Runs a write transaction alone when the database is SQLite: it has one connection,
 * on which two interleaved transactions would collide. PostgreSQL runs them side by side.
 */
export function exclusiveWrite<T>(ds: DataSource, work: () => Promise<T>): Promise<T> {
  if (ds.options.type !== 'better-sqlite3') return work();
  const run = (writeQueues.get(ds) ?? Promise.resolve()).then(work, work);
  writeQueues.set(
    ds,
    run.catch(() => undefined),
  );
  return run;
}
