import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMs } from './columns.js';

/**
 * Figures of the cluster per minute and per hour, added to as builds are stored and as
 * the scheduler's queues and workers are sampled, so that a chart reads a few hundred
 * rows and never the builds. What each metric keeps is in rollups/rollup-metrics.ts.
 */
@Entity({ name: 'rollups' })
@Index('rollups_range', ['period', 'metric', 'bucket'])
export class RollupEntity {
  /** `minute` or `hour`. */
  @PrimaryColumn({ type: 'varchar', length: 8 })
  period!: string;

  @PrimaryColumn({ type: 'varchar', length: 16 })
  metric!: string;

  /** A pool or a job name ('' for none). */
  @PrimaryColumn({ type: 'varchar', length: 200 })
  subject!: string;

  /** The start of the minute or hour, epoch ms. */
  @PrimaryColumn({ type: 'bigint', transformer: epochMs })
  bucket!: number;

  /** A histogram's bin (times); 0 for the metrics that have none. */
  @PrimaryColumn({ type: 'integer' })
  bin!: number;

  @Column({ type: 'bigint', transformer: epochMs })
  count!: number;

  @Column({ type: 'bigint', transformer: epochMs })
  total!: number;

  @Column({ type: 'bigint', transformer: epochMs })
  peak!: number;

  @Column({ type: 'bigint', transformer: epochMs })
  part!: number;
}
