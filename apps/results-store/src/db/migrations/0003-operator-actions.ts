import { Table, TableIndex, type MigrationInterface, type QueryRunner, type TableColumnOptions } from 'typeorm';

/**
 * The dashboard's actions (issue 15): the audit log of every action, the link from a
 * retried build to its original, and an index for a worker's recent failures (its page).
 */
const varchar = (name: string, length: number): TableColumnOptions => ({ name, type: 'varchar', length: String(length) });

export class OperatorActions1796860800000 implements MigrationInterface {
  name = 'OperatorActions1796860800000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'audit_log',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'at', type: 'bigint' },
          varchar('user_name', 100),
          varchar('role', 16),
          varchar('action', 32),
          varchar('target', 200),
          varchar('result', 16),
          { name: 'detail', type: 'text', isNullable: true },
        ],
        indices: [new TableIndex({ name: 'audit_log_at', columnNames: ['at'] })],
      }),
    );
    await q.createTable(
      new Table({
        name: 'retries',
        columns: [{ ...varchar('build', 48), isPrimary: true }, varchar('retry_of', 48), varchar('user_name', 100), { name: 'at', type: 'bigint' }],
        indices: [new TableIndex({ name: 'retries_of', columnNames: ['retry_of'] })],
      }),
    );
    await q.createIndex('builds', new TableIndex({ name: 'builds_worker_state_finished', columnNames: ['worker', 'state', 'finished_at', 'id'] }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('builds', 'builds_worker_state_finished');
    await q.dropTable('retries');
    await q.dropTable('audit_log');
  }
}
