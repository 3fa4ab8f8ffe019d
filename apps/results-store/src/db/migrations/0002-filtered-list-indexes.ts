import { TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Indexes for the filtered build list (`/builds?pool=...&state=...&q=...`):
 *
 * - `builds (pool, state, finished_at, id)` on both databases: "what failed in this
 *   pool", newest first. The planners walked the state index and fetched every failed
 *   build of every pool to keep one in four; with 100,000 builds, PostgreSQL read 2,100
 *   rows for a page of 51 (4.7 ms; 0.85 ms with this index), SQLite 1.8 ms (0.5 ms).
 * - `jobs_name_trgm` on PostgreSQL: a trigram index on `LOWER(name)`, the expression the
 *   text search (`q`, any part of a job name) compares with `LIKE '%...%'`, which no
 *   B-tree can serve; without it every search scans the whole jobs table. SQLite has no
 *   such index and keeps its scan. pg_trgm ships with PostgreSQL but is an extension:
 *   where it is not installed and this role may not create it, the index is left out
 *   and the search still works, by scan (decisions.md says how to add it later).
 *
 * TypeORM does not see expression indexes when it compares the schema with the
 * entities, so the trigram index is declared here only.
 */
export class FilteredListIndexes1796342400000 implements MigrationInterface {
  name = 'FilteredListIndexes1796342400000';

  async up(q: QueryRunner): Promise<void> {
    await q.createIndex('builds', new TableIndex({ name: 'builds_pool_state_finished', columnNames: ['pool', 'state', 'finished_at', 'id'] }));
    if (q.connection.options.type === 'postgres' && (await mayUseTrigrams(q))) {
      await q.query('CREATE EXTENSION IF NOT EXISTS pg_trgm');
      await q.query('CREATE INDEX jobs_name_trgm ON jobs USING gin (LOWER(name) gin_trgm_ops)');
    }
  }

  async down(q: QueryRunner): Promise<void> {
    // The extension stays: other databases' objects, or the operator, may use it.
    await q.query('DROP INDEX IF EXISTS jobs_name_trgm');
    await q.dropIndex('builds', 'builds_pool_state_finished');
  }
}

/** Whether pg_trgm is installed, or this role may install it (a failed CREATE would abort the migration). */
async function mayUseTrigrams(q: QueryRunner): Promise<boolean> {
  const [row] = (await q.query(
    `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') AS installed,
            EXISTS (SELECT 1 FROM pg_available_extension_versions v WHERE v.name = 'pg_trgm'
                    AND (v.trusted OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))) AS installable,
            has_database_privilege(current_database(), 'CREATE') AS may_create`,
  )) as { installed: boolean; installable: boolean; may_create: boolean }[];
  return Boolean(row && (row.installed || (row.installable && row.may_create)));
}
