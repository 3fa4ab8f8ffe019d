import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import type { BuildId, JobKey } from '../ids.js';
import { epochMs } from './columns.js';

/**
 * A named spec built over time. The latest build's facts are copied here when it is
 * stored so that the job list is one indexed read, not a search over every build.
 * On PostgreSQL, `jobs_name_trgm` (migration 0002, not declared here: TypeORM does not
 * model expression indexes) serves the substring search on names.
 */
@Entity({ name: 'jobs' })
export class JobEntity {
  @PrimaryGeneratedColumn('increment', { type: 'integer' })
  id!: JobKey;

  @Column({ type: 'varchar', length: 200, unique: true })
  name!: string;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs })
  createdAt!: number;

  @Column({ name: 'last_build_id', type: 'varchar', length: 48, nullable: true })
  lastBuildId!: BuildId | null;

  @Column({ name: 'last_state', type: 'varchar', length: 16, nullable: true })
  lastState!: string | null;

  @Column({ name: 'last_finished_at', type: 'bigint', nullable: true, transformer: epochMs })
  lastFinishedAt!: number | null;

  @Column({ name: 'last_pool', type: 'varchar', length: 64, nullable: true })
  lastPool!: string | null;
}
