import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Beside each stored log, its chunks' times and step boundaries (log-index.ts; issues 12
 * and 15). Builds stored before have none: their logs show without times or folding.
 */
export class LogIndex1796868000000 implements MigrationInterface {
  name = 'LogIndex1796868000000';

  async up(q: QueryRunner): Promise<void> {
    // Plain SQL, valid in both: TypeORM's addColumn copies the whole table on SQLite.
    await q.query('ALTER TABLE builds ADD COLUMN log_index text');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('builds', 'log_index');
  }
}
