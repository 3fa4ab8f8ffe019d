import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FLAVOURS, openTestDatabase, sampleResult, type OpenTestDatabase } from '../../../test/support/results-store.js';
import { MIGRATIONS, openDatabase } from '../src/db/data-source.js';
import { asBuildId } from '../src/ids.js';
import { recordBuild } from '../src/ingest/build-recorder.js';
import { BuildQueries, LIKE_NAME } from '../src/queries/build-queries.js';
import { WorkerHistory } from '../src/queries/worker-history.js';

const CATALOG = {
  indexes: {
    postgres: 'SELECT indexname AS name FROM pg_indexes WHERE tablename = $1',
    sqlite: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
  },
  columns: { postgres: 'SELECT column_name AS name FROM information_schema.columns WHERE table_name = $1', sqlite: 'SELECT name FROM pragma_table_info(?)' },
};

async function catalog(ds: DataSource, of: keyof typeof CATALOG, table: string): Promise<string[]> {
  const rows = (await ds.query(CATALOG[of][ds.options.type === 'postgres' ? 'postgres' : 'sqlite'], [table])) as { name: string }[];
  return rows.map((r) => r.name);
}

const indexes = (ds: DataSource, table: string) => catalog(ds, 'indexes', table);
const columns = (ds: DataSource, table: string) => catalog(ds, 'columns', table);

/** The plan of `text` as one string. On PostgreSQL with sequential scans off, as for tables too large to scan (the test's are tiny). */
async function plan(ds: DataSource, text: string, params: unknown[]): Promise<string> {
  if (ds.options.type !== 'postgres') return ((await ds.query(`EXPLAIN QUERY PLAN ${text}`, params)) as { detail: string }[]).map((r) => r.detail).join('\n');
  const runner = ds.createQueryRunner();
  try {
    await runner.query('SET enable_seqscan = off');
    return ((await runner.query(`EXPLAIN ${text}`, params)) as { 'QUERY PLAN': string }[]).map((r) => r['QUERY PLAN']).join('\n');
  } finally {
    await runner.query('RESET enable_seqscan');
    await runner.release();
  }
}

describe.each(FLAVOURS)('the filtered-list indexes (migration 0002) on %s', (flavour) => {
  let database: OpenTestDatabase;
  let ds: DataSource;

  beforeAll(async () => {
    database = await openTestDatabase(flavour, 'cairn-rs-migrations-');
    ({ ds } = database);
    // Enough builds that a planner's choice of index means something: 4 pools x 2 states.
    for (let i = 0; i < 160; i++) {
      const result = sampleResult({
        name: `job-${i % 40}`,
        pool: `pool-${i % 4}`,
        state: i % 3 ? 'succeeded' : 'failed',
        finishedAt: 1_000_000 + i * 1000,
        startedAt: 999_000 + i * 1000,
      });
      await recordBuild(ds, { result, source: 'cluster', artifacts: [], storedAt: Date.now() });
    }
    await ds.query('ANALYZE');
  });
  afterAll(async () => {
    await database?.close();
  });

  it('creates the (pool, state, finish time) index, and the filtered list uses it', async () => {
    expect(await indexes(ds, 'builds')).toContain('builds_pool_state_finished');
    const query = vi.spyOn(ds, 'query');
    const page = await new BuildQueries(ds).listBuilds({ pool: 'pool-1', state: 'failed', q: 'job-1' });
    const [text, params] = query.mock.calls.at(-1)!;
    query.mockRestore();
    expect(page.items.length).toBeGreaterThan(0);
    expect(page.items.every((b) => b.pool === 'pool-1' && b.state === 'failed' && b.job.startsWith('job-1'))).toBe(true);
    expect(await plan(ds, text, (params as unknown[] | undefined) ?? [])).toContain('builds_pool_state_finished');
  });

  it(flavour === 'postgres' ? 'creates the trigram index that the search by job name uses' : 'has no trigram index (SQLite scans the jobs)', async () => {
    const jobIndexes = await indexes(ds, 'jobs');
    if (flavour !== 'postgres') {
      expect(jobIndexes).not.toContain('jobs_name_trgm');
      return;
    }
    expect(jobIndexes).toContain('jobs_name_trgm');
    // The search's own condition, so that the index and the query cannot drift apart.
    expect(await plan(ds, `SELECT j.id FROM jobs j WHERE ${LIKE_NAME.replace(':q', '$1')}`, ['%ob-1%'])).toContain('jobs_name_trgm');
  });

  it("finds a worker's recent failures by its index (migration 0003), and keeps the audit log and retries", async () => {
    const query = vi.spyOn(ds, 'query');
    const failures = await new WorkerHistory(ds).recentFailures('w1', 5);
    const [text, params] = query.mock.calls.at(-1)!;
    query.mockRestore();
    expect(failures.length).toBeGreaterThan(0);
    expect(await plan(ds, text, (params as unknown[] | undefined) ?? [])).toContain('builds_worker_state_finished');
    expect(await indexes(ds, 'audit_log')).toContain('audit_log_at');
    expect(await indexes(ds, 'retries')).toContain('retries_of');
  });

  it('keeps the trace ID of a build (migration 0006); a build stored before has none', async () => {
    const trace = randomBytes(16).toString('hex');
    const result = sampleResult({ name: 'traced', finishedAt: 2_000_000, startedAt: 1_999_000 });
    await recordBuild(ds, { result, source: 'cluster', artifacts: [], trace, storedAt: Date.now() });
    const queries = new BuildQueries(ds);
    expect((await queries.getBuild(asBuildId(result.job)))?.trace).toBe(trace);
    await ds.undoLastMigration({ transaction: 'each' });
    expect(await columns(ds, 'builds')).not.toContain('trace');
    await ds.runMigrations({ transaction: 'each' });
    expect(await columns(ds, 'builds')).toContain('trace');
    expect((await queries.getBuild(asBuildId(result.job)))?.trace).toBeNull();
  });

  it('is undone by its down migration (and the later ones) and applied again', async () => {
    // Down to and including 0002, the second.
    for (let i = 1; i < MIGRATIONS.length; i++) await ds.undoLastMigration({ transaction: 'each' });
    expect(await indexes(ds, 'builds')).not.toContain('builds_pool_state_finished');
    expect(await indexes(ds, 'jobs')).not.toContain('jobs_name_trgm');
    await ds.runMigrations({ transaction: 'each' });
    expect(await indexes(ds, 'builds')).toContain('builds_pool_state_finished');
    if (flavour === 'postgres') expect(await indexes(ds, 'jobs')).toContain('jobs_name_trgm');
  });
});

describe('the filtered-list indexes for a PostgreSQL role that may not create extensions', () => {
  const PG = {
    host: process.env.PGHOST ?? '127.0.0.1',
    port: Number(process.env.PGPORT ?? 5432),
    user: process.env.PGUSER ?? 'postgres',
    database: 'postgres',
  };
  const name = `cairn_rs_plain_${randomBytes(6).toString('hex')}`;
  const admin = async (work: (c: pg.Client) => Promise<unknown>, database = 'postgres') => {
    const c = new pg.Client({ ...PG, database });
    await c.connect();
    try {
      await work(c);
    } finally {
      await c.end();
    }
  };

  beforeAll(async () => {
    await admin(async (c) => {
      await c.query(`CREATE ROLE ${name} LOGIN`);
      await c.query(`CREATE DATABASE ${name} OWNER postgres`);
    });
    // Tables in the public schema, but no CREATE on the database: no extensions.
    await admin((c) => c.query(`GRANT CREATE ON SCHEMA public TO ${name}`), name);
  });
  afterAll(async () => {
    await admin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.query(`DROP ROLE IF EXISTS ${name}`);
    });
  });

  it('migrates without the trigram index, and the search still finds jobs by part of their name', async () => {
    const ds = await openDatabase(`postgres://${name}@${PG.host}:${PG.port}/${name}`);
    try {
      expect(await indexes(ds, 'builds')).toContain('builds_pool_state_finished');
      expect(await indexes(ds, 'jobs')).not.toContain('jobs_name_trgm');
      const result = sampleResult({ name: 'Searchable-Job' });
      await recordBuild(ds, { result, source: 'cluster', artifacts: [], storedAt: Date.now() });
      expect((await new BuildQueries(ds).listBuilds({ q: 'able-j' })).items.map((b) => b.id)).toEqual([result.job]);
    } finally {
      await ds.destroy();
    }
  });
});
