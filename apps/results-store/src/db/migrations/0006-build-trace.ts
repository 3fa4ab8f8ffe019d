import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Each build's trace ID (contracts' trace.ts), from the `Cairn-Trace` header its result
 * came with, so that its page leads to the services' log lines (issue 14). Builds stored
 * before, uploads, and results published without the header have none.
 */
export class BuildTrace1796871600000 implements MigrationInterface {
  name = 'BuildTrace1796871600000';

  async up(q: QueryRunner): Promise<void> {
    // Plain SQL, valid in both: TypeORM's addColumn copies the whole table on SQLite.
    await q.query('ALTER TABLE builds ADD COLUMN trace varchar(32)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('builds', 'trace');
  }
}
