/**
 * A results database filled with a large history for the page benchmark: the schema
 * from the store's own migrations, then builds, steps, artifacts and jobs written in
 * bulk straight into SQLite or PostgreSQL.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { DatabaseFlavour } from '../test/support/results-store.js';
import { RollupBatch } from '../apps/results-store/src/rollups/rollup-metrics.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const POOLS = ['linux-x86_64', 'linux-arm64', 'macos-arm64', 'windows-x86_64'];
const PLATFORMS = ['linux/amd64', 'linux/arm64', 'darwin/arm64', 'windows/amd64'];
export const JOBS = 1000;
export const STEPS = 5;

/** The schema, made by the store's own migrations (`main.ts migrate`). */
export async function migrate(env: Record<string, string>): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx/esm', join(ROOT, 'apps/results-store/src/main.ts'), 'migrate'], {
    cwd: ROOT,
    env: { ...process.env, TSX_TSCONFIG_PATH: join(ROOT, 'apps/results-store/tsconfig.json'), ...env },
    stdio: 'inherit',
  });
  const code = await new Promise((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`migrate exited with ${code}`);
}

type Row = (string | number | boolean | null)[];

function* seedRows(BUILDS: number): Generator<{ table: string; row: Row }> {
  const t0 = Date.now() - BUILDS * 60_000;
  for (let j = 1; j <= JOBS; j++) yield { table: 'jobs', row: [j, `job-${String(j).padStart(4, '0')}`, t0, null, null, null, null] };
  for (let i = 0; i < BUILDS; i++) {
    const id = `j-${i.toString(36).padStart(8, '0')}${randomBytes(4).toString('hex')}`;
    const job = (i % JOBS) + 1;
    const finished = t0 + i * 60_000;
    const state = i % 7 === 0 ? 'failed' : 'succeeded';
    const pool = POOLS[i % POOLS.length]!;
    yield {
      table: 'builds',
      row: [
        id,
        job,
        pool,
        PLATFORMS[i % PLATFORMS.length]!,
        `w${i % 30}`,
        `client-${i % 20}`,
        `((from busybox)\n (run (shell "make -j${i % 8}")))`,
        null,
        `hint-${job}`,
        state,
        state === 'failed' ? 'step 5: exit 2' : null,
        'f'.repeat(64),
        1,
        finished - 90_000,
        finished - 80_000,
        finished,
        80_000,
        STEPS,
        2,
        null,
        null,
        'cluster',
        finished,
        null,
      ],
    };
    for (let s = 0; s < STEPS; s++)
      yield { table: 'steps', row: [id, s, '', s === 0 ? '(from busybox)' : `(run (shell "step ${s}"))`, randomBytes(32).toString('hex'), s < 2, 1000 * s] };
    for (let a = 0; a < 2; a++) yield { table: 'artifacts', row: [id, `out/file-${a}`, 1024, randomBytes(32).toString('hex')] };
  }
}

const COLUMNS: Record<string, string[]> = {
  jobs: ['id', 'name', 'created_at', 'last_build_id', 'last_state', 'last_finished_at', 'last_pool'],
  builds: [
    'id',
    'job_id',
    'pool',
    'platform',
    'worker',
    'client',
    'spec',
    'context_digest',
    'cache_hint',
    'state',
    'failure',
    'snapshot_id',
    'attempts',
    'submitted_at',
    'started_at',
    'finished_at',
    'duration_ms',
    'steps_total',
    'steps_cached',
    'log_sha256',
    'log_bytes',
    'source',
    'stored_at',
    'note',
  ],
  steps: ['build_id', 'position', 'stage', 'op', 'step_id', 'cached', 'ms'],
  artifacts: ['build_id', 'path', 'size', 'sha256'],
};
const FINISH_JOBS =
  'UPDATE jobs SET last_build_id = b.id, last_state = b.state, last_finished_at = b.finished_at, last_pool = b.pool FROM (SELECT DISTINCT ON (job_id) job_id, id, state, finished_at, pool FROM builds ORDER BY job_id, finished_at DESC) b WHERE b.job_id = jobs.id';

export async function seed(flavour: DatabaseFlavour, location: string, builds: number): Promise<string[]> {
  const ids: string[] = [];
  if (flavour === 'sqlite') {
    const db = new Database(location);
    const insert = Object.fromEntries(
      Object.entries(COLUMNS).map(([t, cols]) => [t, db.prepare(`INSERT INTO ${t} (${cols.join(',')}) VALUES (${cols.map(() => '?').join(',')})`)]),
    );
    db.transaction(() => {
      for (const { table, row } of seedRows(builds)) {
        insert[table]!.run(...row.map((v) => (typeof v === 'boolean' ? Number(v) : v)));
        if (table === 'builds') ids.push(row[0] as string);
      }
    })();
    db.exec(
      'UPDATE jobs SET (last_build_id, last_state, last_finished_at, last_pool) = (SELECT id, state, finished_at, pool FROM builds WHERE builds.job_id = jobs.id ORDER BY finished_at DESC LIMIT 1); ANALYZE;',
    );
    db.close();
    return ids;
  }
  const client = new pg.Client({ connectionString: location });
  await client.connect();
  const batches: Record<string, Row[]> = { jobs: [], builds: [], steps: [], artifacts: [] };
  const flush = async (table: string) => {
    const rows = batches[table]!;
    if (!rows.length) return;
    const cols = COLUMNS[table]!;
    const params: unknown[] = [];
    const tuples = rows.map((row) => `(${row.map((v) => (params.push(v), `$${params.length}`)).join(',')})`);
    await client.query(`INSERT INTO ${table} (${cols.join(',')}) VALUES ${tuples.join(',')}`, params);
    batches[table] = [];
  };
  for (const { table, row } of seedRows(builds)) {
    if (table === 'builds') ids.push(row[0] as string);
    batches[table]!.push(row);
    if (table !== 'jobs' && batches.jobs!.length) await flush('jobs');
    if (batches[table]!.length * COLUMNS[table]!.length > 30_000) {
      await flush('builds');
      await flush(table);
    }
  }
  for (const t of ['jobs', 'builds', 'steps', 'artifacts']) await flush(t);
  await client.query(FINISH_JOBS);
  await client.query("SELECT setval(pg_get_serial_sequence('jobs', 'id'), (SELECT MAX(id) FROM jobs))");
  await client.query('ANALYZE');
  await client.end();
  return ids;
}

/**
 * Brings a freshly seeded database to the state of one that has run for a while: on
 * PostgreSQL, VACUUM (the seeding's 800,000 new rows otherwise have autovacuum, and the
 * first reads setting hint bits, write them all again while the pages are measured) and
 * a checkpoint (so the seeding's WAL is not flushed mid-run); on SQLite, the WAL folded
 * into the database file.
 */
export async function settle(flavour: DatabaseFlavour, location: string): Promise<void> {
  if (flavour === 'sqlite') {
    const db = new Database(location);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    return;
  }
  const client = new pg.Client({ connectionString: location });
  await client.connect();
  try {
    await client.query('VACUUM (ANALYZE)');
    await client.query('CHECKPOINT');
  } finally {
    await client.end();
  }
}

/**
 * The charts' rollups of the seeded history, as the store would have added them: every
 * build of the last 30 days (older hour rollups are pruned), and a sample of each pool's
 * queue and workers every minute of the last 2 days and every 10 minutes before.
 */
export async function seedRollups(flavour: DatabaseFlavour, location: string, builds: number): Promise<number> {
  const now = Date.now();
  const t0 = now - builds * 60_000;
  const batch = new RollupBatch();
  for (let i = 0; i < builds; i++) {
    const finished = t0 + i * 60_000;
    if (now - finished > 30 * 24 * 3600_000) continue;
    const steps = Array.from({ length: STEPS }, (_, s) => ({ stage: '', op: '', id: '', cached: s < 2, ms: 1000 * s }));
    batch.addBuild({
      pool: POOLS[i % POOLS.length]!,
      name: `job-${String((i % JOBS) + 1).padStart(4, '0')}`,
      state: i % 7 === 0 ? 'failed' : 'succeeded',
      steps,
      submittedAt: finished - 90_000,
      startedAt: finished - 80_000,
      finishedAt: finished,
    });
  }
  for (let at = now - 30 * 24 * 3600_000; at < now; at += at < now - 2 * 24 * 3600_000 ? 600_000 : 60_000) {
    for (const [p, pool] of POOLS.entries()) {
      const queued = (at / 60_000 + p) % 13;
      batch.add(at, 'queue', pool, { total: queued, peak: queued });
      batch.add(at, 'oldest', pool, { total: queued * 30_000, peak: queued * 30_000 });
      batch.add(at, 'busy', pool, { total: queued % 9, part: 8 });
    }
  }
  if (flavour === 'sqlite') {
    const db = new Database(location);
    db.transaction(() => {
      for (const [sql, params] of batch.statements(false)) db.prepare(sql).run(...params);
    })();
    db.close();
  } else {
    const client = new pg.Client({ connectionString: location });
    await client.connect();
    for (const [sql, params] of batch.statements(true)) await client.query(sql, params);
    await client.end();
  }
  return batch.size;
}
