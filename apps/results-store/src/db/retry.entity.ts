import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { BuildId } from '../ids.js';
import { epochMs } from './columns.js';

/** A build made by retrying another from the dashboard: its page links to the original. */
@Entity({ name: 'retries' })
@Index('retries_of', ['retryOf'])
export class RetryEntity {
  /** The new build's job ID (it may not be stored yet: it is queued or running). */
  @PrimaryColumn({ type: 'varchar', length: 48 })
  build!: BuildId;

  @Column({ name: 'retry_of', type: 'varchar', length: 48 })
  retryOf!: BuildId;

  @Column({ name: 'user_name', type: 'varchar', length: 100 })
  user!: string;

  @Column({ type: 'bigint', transformer: epochMs })
  at!: number;
}
