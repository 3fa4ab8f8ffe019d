import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * The rollups behind the charts (issue 15): per minute and per hour, keyed by metric,
 * subject, bucket and histogram bin. Builds stored before this migration are not
 * counted (the charts start from the upgrade).
 */
export class Rollups1796864400000 implements MigrationInterface {
  name = 'Rollups1796864400000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'rollups',
        columns: [
          { name: 'period', type: 'varchar', length: '8', isPrimary: true },
          { name: 'metric', type: 'varchar', length: '16', isPrimary: true },
          { name: 'subject', type: 'varchar', length: '200', isPrimary: true },
          { name: 'bucket', type: 'bigint', isPrimary: true },
          { name: 'bin', type: 'integer', isPrimary: true },
          ...['count', 'total', 'peak', 'part'].map((name) => ({ name, type: 'bigint' })),
        ],
        // A chart's range of one metric across its subjects (the key serves one subject's).
        indices: [new TableIndex({ name: 'rollups_range', columnNames: ['period', 'metric', 'bucket'] })],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('rollups');
  }
}
