/** What a worker's page shows from the history: its recent failures, newest first (index builds_worker_state_finished). */
import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { BuildId } from '../ids.js';
import { DATA_SOURCE } from '../tokens.js';

export interface WorkerFailure {
  readonly id: BuildId;
  readonly job: string;
  readonly pool: string;
  readonly finishedAt: number;
  readonly failure: string | null;
}

@Injectable()
export class WorkerHistory {
  constructor(@Inject(DATA_SOURCE) private readonly ds: DataSource) {}

  async recentFailures(worker: string, limit = 20): Promise<WorkerFailure[]> {
    const param = this.ds.options.type === 'postgres' ? '$1' : '?';
    const rows = (await this.ds.query(
      `SELECT b.id AS id, j.name AS job, b.pool AS pool, b.finished_at AS finished_at, b.failure AS failure FROM builds b JOIN jobs j ON j.id = b.job_id
       WHERE b.worker = ${param} AND b.state = 'failed' ORDER BY b.finished_at DESC, b.id DESC LIMIT ${Math.max(1, Math.floor(limit))}`,
      [worker],
    )) as { id: BuildId; job: string; pool: string; finished_at: string | number; failure: string | null }[];
    return rows.map((r) => ({ id: r.id, job: r.job, pool: r.pool, finishedAt: Number(r.finished_at), failure: r.failure }));
  }
}
