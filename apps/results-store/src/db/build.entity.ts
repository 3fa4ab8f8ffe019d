import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, type Relation } from 'typeorm';
import { JobEntity } from './job.entity.js';
import type { BuildId, JobKey, Sha256 } from '../ids.js';
import { epochMs } from './columns.js';

export type BuildState = 'succeeded' | 'failed' | 'cancelled';
/** Where a result came from: the cluster's results stream or the upload endpoint. */
export type BuildSource = 'cluster' | 'upload';

/** One finished build of a job, keyed by the cluster's job ID. */
@Entity({ name: 'builds' })
@Index('builds_finished', ['finishedAt', 'id'])
@Index('builds_job_finished', ['jobId', 'finishedAt', 'id'])
@Index('builds_state_finished', ['state', 'finishedAt', 'id'])
@Index('builds_pool_finished', ['pool', 'finishedAt', 'id'])
@Index('builds_client_finished', ['client', 'finishedAt', 'id'])
@Index('builds_platform_finished', ['platform', 'finishedAt', 'id'])
@Index('builds_pool_state_finished', ['pool', 'state', 'finishedAt', 'id'])
@Index('builds_worker_state_finished', ['worker', 'state', 'finishedAt', 'id'])
export class BuildEntity {
  @PrimaryColumn({ type: 'varchar', length: 48 })
  id!: BuildId;

  @Column({ name: 'job_id', type: 'integer' })
  jobId!: JobKey;

  @ManyToOne(() => JobEntity, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'job_id' })
  job?: Relation<JobEntity>;

  @Column({ type: 'varchar', length: 64 })
  pool!: string;

  @Column({ type: 'varchar', length: 64 })
  platform!: string;

  @Column({ type: 'varchar', length: 128 })
  worker!: string;

  @Column({ type: 'varchar', length: 64 })
  client!: string;

  @Column({ type: 'text' })
  spec!: string;

  @Column({ name: 'context_digest', type: 'varchar', length: 71, nullable: true })
  contextDigest!: string | null;

  @Column({ name: 'cache_hint', type: 'varchar', length: 200 })
  cacheHint!: string;

  @Column({ type: 'varchar', length: 16 })
  state!: BuildState;

  @Column({ type: 'text', nullable: true })
  failure!: string | null;

  @Column({ name: 'snapshot_id', type: 'varchar', length: 128, nullable: true })
  snapshotId!: string | null;

  @Column({ type: 'integer' })
  attempts!: number;

  @Column({ name: 'submitted_at', type: 'bigint', transformer: epochMs })
  submittedAt!: number;

  @Column({ name: 'started_at', type: 'bigint', transformer: epochMs })
  startedAt!: number;

  @Column({ name: 'finished_at', type: 'bigint', transformer: epochMs })
  finishedAt!: number;

  @Column({ name: 'duration_ms', type: 'bigint', transformer: epochMs })
  durationMs!: number;

  @Column({ name: 'steps_total', type: 'integer' })
  stepsTotal!: number;

  @Column({ name: 'steps_cached', type: 'integer' })
  stepsCached!: number;

  /** The archived log, a blob like any artifact (null when the stream held none). */
  @Column({ name: 'log_sha256', type: 'varchar', length: 64, nullable: true })
  logSha256!: Sha256 | null;

  @Column({ name: 'log_bytes', type: 'bigint', nullable: true, transformer: epochMs })
  logBytes!: number | null;

  /** When the log's chunks were written and where its steps are (log-index.ts); null before migration 0005 and for uploads. */
  @Column({ name: 'log_index', type: 'text', nullable: true })
  logIndex!: string | null;

  /** The trace ID its result's message carried (contracts' trace.ts); null before migration 0006, for uploads and results without one. */
  @Column({ type: 'varchar', length: 32, nullable: true })
  trace!: string | null;

  @Column({ type: 'varchar', length: 16 })
  source!: BuildSource;

  @Column({ name: 'stored_at', type: 'bigint', transformer: epochMs })
  storedAt!: number;

  /** What the store could not keep (an artifact missing from the object store). */
  @Column({ type: 'text', nullable: true })
  note!: string | null;
}
