/**
 * Samples what the history cannot tell: each pool's queue (length and the age of the
 * oldest queued job) and its workers' busy slots against their capacity, once a minute,
 * into the rollups; and drops rollups older than the charts show.
 */
import { Inject, Injectable, type LoggerService, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { LiveBoard } from '../live/live-board.js';
import { SchedulerViews } from '../live/scheduler-views.js';
import { DATA_SOURCE, LOGGER } from '../tokens.js';
import { exclusiveWrite } from '../db/exclusive-write.js';
import { pruneRollups, RollupBatch } from './rollup-metrics.js';

export const SAMPLE_EVERY_MS = 60_000;
/** The 1 h chart reads minutes; the others read hours (charts-page.ts). */
const KEEP_MINUTES_MS = 2 * 24 * 3600_000;
const KEEP_HOURS_MS = 35 * 24 * 3600_000;

@Injectable()
export class RollupSampler implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private lastPrune = 0;

  constructor(
    @Inject(DATA_SOURCE) private readonly ds: DataSource,
    @Inject(SchedulerViews) private readonly scheduler: SchedulerViews,
    @Inject(LiveBoard) private readonly live: LiveBoard,
    @Inject(LOGGER) private readonly logger: LoggerService,
  ) {}

  onApplicationBootstrap(): void {
    void this.sample(Date.now());
    this.timer = setInterval(() => void this.sample(Date.now()), SAMPLE_EVERY_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** One sample of every pool the scheduler knows; nothing when it does not answer. */
  async sample(now: number): Promise<void> {
    try {
      const [pools, workers] = await Promise.all([this.scheduler.pools(), this.scheduler.workers()]);
      if (!pools.ok) return;
      const queued = this.live.active().filter((j) => j.state === 'queued');
      const batch = new RollupBatch();
      for (const { pool, queued: length } of pools.value) {
        batch.add(now, 'queue', pool, { total: length, peak: length });
        const oldest = queued.filter((j) => j.pool === pool).reduce((min, j) => Math.min(min, j.since), now);
        batch.add(now, 'oldest', pool, { total: now - oldest, peak: now - oldest });
        const members = workers.ok ? workers.value.filter((w) => w.pool === pool && w.connected) : [];
        batch.add(now, 'busy', pool, { total: members.reduce((n, w) => n + w.running.length, 0), part: members.reduce((n, w) => n + w.capacity, 0) });
      }
      await exclusiveWrite(this.ds, () => batch.write(this.ds));
      if (now - this.lastPrune > 3600_000) {
        this.lastPrune = now;
        await exclusiveWrite(this.ds, () => pruneRollups(this.ds, now, KEEP_MINUTES_MS, KEEP_HOURS_MS));
      }
    } catch (e) {
      this.logger.error(`sampling the queues for the charts: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
