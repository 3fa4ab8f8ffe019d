import { Table, TableForeignKey, TableIndex, type MigrationInterface, type QueryRunner, type TableColumnOptions } from 'typeorm';

/**
 * The first schema, written with TypeORM's table builder so that the one migration
 * serves SQLite and PostgreSQL alike. A test checks that, once migrated, the database
 * matches the entities exactly (nothing left for `synchronize` to do).
 */
const varchar = (name: string, length: number, extra: Partial<TableColumnOptions> = {}): TableColumnOptions => ({
  name,
  type: 'varchar',
  length: String(length),
  ...extra,
});
const bigint = (name: string, extra: Partial<TableColumnOptions> = {}): TableColumnOptions => ({ name, type: 'bigint', ...extra });
const integer = (name: string, extra: Partial<TableColumnOptions> = {}): TableColumnOptions => ({ name, type: 'integer', ...extra });
const text = (name: string, extra: Partial<TableColumnOptions> = {}): TableColumnOptions => ({ name, type: 'text', ...extra });
const serial = (name: string): TableColumnOptions => ({ name, type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' });
const fk = (column: string, table: string, onDelete: 'CASCADE' | 'RESTRICT') =>
  new TableForeignKey({ columnNames: [column], referencedTableName: table, referencedColumnNames: ['id'], onDelete });
const index = (name: string, columnNames: string[]) => new TableIndex({ name, columnNames });

export class InitialSchema1732400000000 implements MigrationInterface {
  name = 'InitialSchema1732400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'jobs',
        columns: [
          serial('id'),
          varchar('name', 200, { isUnique: true }),
          bigint('created_at'),
          varchar('last_build_id', 48, { isNullable: true }),
          varchar('last_state', 16, { isNullable: true }),
          bigint('last_finished_at', { isNullable: true }),
          varchar('last_pool', 64, { isNullable: true }),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'builds',
        columns: [
          varchar('id', 48, { isPrimary: true }),
          integer('job_id'),
          varchar('pool', 64),
          varchar('platform', 64),
          varchar('worker', 128),
          varchar('client', 64),
          text('spec'),
          varchar('context_digest', 71, { isNullable: true }),
          varchar('cache_hint', 200),
          varchar('state', 16),
          text('failure', { isNullable: true }),
          varchar('snapshot_id', 128, { isNullable: true }),
          integer('attempts'),
          bigint('submitted_at'),
          bigint('started_at'),
          bigint('finished_at'),
          bigint('duration_ms'),
          integer('steps_total'),
          integer('steps_cached'),
          varchar('log_sha256', 64, { isNullable: true }),
          bigint('log_bytes', { isNullable: true }),
          varchar('source', 16),
          bigint('stored_at'),
          text('note', { isNullable: true }),
        ],
        foreignKeys: [fk('job_id', 'jobs', 'RESTRICT')],
        indices: [
          index('builds_finished', ['finished_at', 'id']),
          index('builds_job_finished', ['job_id', 'finished_at', 'id']),
          index('builds_state_finished', ['state', 'finished_at', 'id']),
          index('builds_pool_finished', ['pool', 'finished_at', 'id']),
          index('builds_client_finished', ['client', 'finished_at', 'id']),
          index('builds_platform_finished', ['platform', 'finished_at', 'id']),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'steps',
        columns: [
          varchar('build_id', 48, { isPrimary: true }),
          integer('position', { isPrimary: true }),
          varchar('stage', 200),
          text('op'),
          varchar('step_id', 128),
          { name: 'cached', type: 'boolean' },
          integer('ms'),
        ],
        foreignKeys: [fk('build_id', 'builds', 'CASCADE')],
        indices: [index('steps_step_id', ['step_id'])],
      }),
    );
    await q.createTable(
      new Table({
        name: 'artifacts',
        columns: [varchar('build_id', 48, { isPrimary: true }), varchar('path', 1024, { isPrimary: true }), bigint('size'), varchar('sha256', 64)],
        foreignKeys: [fk('build_id', 'builds', 'CASCADE')],
        indices: [index('artifacts_sha256', ['sha256'])],
      }),
    );
    await q.createTable(
      new Table({
        name: 'users',
        columns: [serial('id'), varchar('name', 100, { isUnique: true }), varchar('role', 16), bigint('created_at')],
      }),
    );
    await q.createTable(
      new Table({
        name: 'tokens',
        columns: [
          serial('id'),
          integer('user_id'),
          varchar('hash', 64, { isUnique: true }),
          varchar('label', 100),
          bigint('created_at'),
          bigint('revoked_at', { isNullable: true }),
        ],
        foreignKeys: [fk('user_id', 'users', 'CASCADE')],
        indices: [index('tokens_user', ['user_id'])],
      }),
    );
    await q.createTable(new Table({ name: 'tags', columns: [serial('id'), varchar('name', 64, { isUnique: true })] }));
    await q.createTable(
      new Table({
        name: 'build_tags',
        columns: [varchar('build_id', 48, { isPrimary: true }), integer('tag_id', { isPrimary: true })],
        foreignKeys: [fk('build_id', 'builds', 'CASCADE'), fk('tag_id', 'tags', 'CASCADE')],
        indices: [index('build_tags_tag', ['tag_id'])],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of ['build_tags', 'tags', 'tokens', 'users', 'artifacts', 'steps', 'builds', 'jobs']) await q.dropTable(table);
  }
}
