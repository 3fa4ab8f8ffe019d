import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { epochMs } from './columns.js';

/** How an operator's action ended: done, refused by the service that owns it, or no answer. */
export type AuditResult = 'ok' | 'refused' | 'failed';

/** One action taken from the dashboard: who, what, on what, when, and how it ended. */
@Entity({ name: 'audit_log' })
@Index('audit_log_at', ['at'])
export class AuditEntity {
  @PrimaryGeneratedColumn('increment', { type: 'integer' })
  id!: number;

  @Column({ type: 'bigint', transformer: epochMs })
  at!: number;

  @Column({ name: 'user_name', type: 'varchar', length: 100 })
  user!: string;

  @Column({ type: 'varchar', length: 16 })
  role!: string;

  /** `job-cancel`, `build-retry`, `worker-drain`, ... */
  @Column({ type: 'varchar', length: 32 })
  action!: string;

  /** What it acted on: a job ID, a worker, a pool, a client. */
  @Column({ type: 'varchar', length: 200 })
  target!: string;

  @Column({ type: 'varchar', length: 16 })
  result!: AuditResult;

  /** The service's answer: the new build of a retry, the refusal's reason. */
  @Column({ type: 'text', nullable: true })
  detail!: string | null;
}
