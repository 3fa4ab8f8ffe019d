/**
 * What runs beside the HTTP handlers, started once the application is up and stopped
 * before it closes: the result consumer, the live board, periodic retention, the page
 * backfill, the storage gauge, and the health checks /healthz reports.
 */
import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type LoggerService,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { attempts } from '@cairn/contracts';
import { Ops } from '@cairn/service-kit';
import type { DataSource } from 'typeorm';
import { BlobStore } from './blobs/blob-store.js';
import type { ResultsConfig } from './config.js';
import { UploadHooks } from './hooks/upload-hooks.js';
import { ResultConsumer } from './ingest/result-consumer.js';
import { LiveBoard } from './live/live-board.js';
import { PageBackfill } from './maintenance/page-backfill.js';
import { applyRetention } from './maintenance/retention.js';
import { RequestActivity } from './ops/request-activity.js';
import { ResultsMetrics } from './ops/results-metrics.js';
import { CONFIG, DATA_SOURCE, LOGGER } from './tokens.js';
import { BuildPages } from './pages/build-pages.js';
import { Comparer } from './pages/comparer.js';
import { ChartPages } from './pages/chart-pages.js';
import { SseHub } from './live/sse-hub.js';

const STORAGE_REFRESH_MS = 5 * 60_000;
const DB_CHECK_TIMEOUT_MS = 2000;

@Injectable()
export class ResultsLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly timers: NodeJS.Timeout[] = [];
  private consumerError: string | undefined = 'not started';
  private consuming: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(
    @Inject(ResultConsumer) private readonly consumer: ResultConsumer,
    @Inject(LiveBoard) private readonly live: LiveBoard,
    @Inject(SseHub) private readonly sse: SseHub,
    @Inject(UploadHooks) private readonly hooks: UploadHooks,
    @Inject(BlobStore) private readonly blobs: BlobStore,
    @Inject(ResultsMetrics) private readonly metrics: ResultsMetrics,
    @Inject(Ops) private readonly ops: Ops,
    @Inject(DATA_SOURCE) private readonly ds: DataSource,
    @Inject(CONFIG) private readonly config: ResultsConfig,
    @Inject(LOGGER) private readonly logger: LoggerService,
    @Inject(PageBackfill) private readonly backfill: PageBackfill,
    @Inject(BuildPages) private readonly buildPages: BuildPages,
    @Inject(RequestActivity) private readonly activity: RequestActivity,
    @Inject(HttpAdapterHost) private readonly http: HttpAdapterHost,
    @Inject(Comparer) private readonly comparer: Comparer,
    @Inject(ChartPages) private readonly chartPages: ChartPages,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.ops.addCheck('database', () => this.checkDatabase());
    this.ops.addCheck('results-consumer', () => this.consumerError);
    this.live.start();
    // The first attempt is waited for, so that a store that starts normally is ready when
    // its start returns (tests and `cairn up` count on it); later attempts go on behind.
    if (!(await this.startConsumer(0))) this.consuming = this.retryConsumer();
    // The backfill gives way to readers; it learns of them from the HTTP server itself.
    this.activity.watch(this.http.httpAdapter.getHttpServer());
    this.backfill.start();
    void this.refreshStorage();
    this.every(STORAGE_REFRESH_MS, () => this.refreshStorage());
    if (this.config.retentionIntervalMs > 0 && this.config.retention.keepLast > 0) this.every(this.config.retentionIntervalMs, () => this.retain());
  }

  async beforeApplicationShutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.sse.closeAll();
    this.live.stop();
    this.stopping.abort();
    await this.consuming;
    await this.consumer.stop();
    await this.backfill.stop();
    await this.hooks.idle();
    await this.buildPages.idle();
    await this.comparer.close();
    await this.chartPages.close();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.ds.isInitialized) await this.ds.destroy();
  }

  /** One attempt to start the result consumer: false when it failed, the reason logged and kept for /readyz. */
  private async startConsumer(attempt: number): Promise<boolean> {
    try {
      await this.consumer.start();
      this.consumerError = undefined;
      if (attempt > 0) this.logger.log(`result consumer started (attempt ${attempt + 1})`);
      return true;
    } catch (e) {
      this.consumerError = e instanceof Error ? e.message : String(e);
      this.logger.error(`result consumer (attempt ${attempt + 1}, trying again): ${this.consumerError}`);
      return false;
    }
  }

  /**
   * The attempts after a failed first one, again and again until one starts: a JetStream
   * request that timed out (a NATS cluster still electing its leaders, a loaded machine)
   * must not leave a live process that never stores a result. Until then /readyz says why.
   */
  private async retryConsumer(): Promise<void> {
    for await (const attempt of attempts({ firstMs: 500, maxMs: 10_000, signal: this.stopping.signal })) {
      if (attempt > 0 && (await this.startConsumer(attempt))) return;
    }
  }

  private every(ms: number, work: () => Promise<void>): void {
    const timer = setInterval(() => void work(), ms);
    timer.unref();
    this.timers.push(timer);
  }

  private async checkDatabase(): Promise<string | undefined> {
    const timeout = new Promise<string>((resolve) => setTimeout(() => resolve(`no answer within ${DB_CHECK_TIMEOUT_MS} ms`), DB_CHECK_TIMEOUT_MS).unref());
    const query = this.metrics
      .timeDb('health', () => this.ds.query('SELECT 1'))
      .then(
        () => undefined,
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      );
    return Promise.race([query, timeout]);
  }

  private async refreshStorage(): Promise<void> {
    let bytes = 0;
    let count = 0;
    for await (const blob of this.blobs.list()) {
      bytes += blob.size;
      count++;
    }
    this.metrics.storageBytes.set(bytes);
    this.metrics.blobs.set(count);
  }

  private async retain(): Promise<void> {
    try {
      const report = await applyRetention(this.ds, this.blobs, this.config.retention, Date.now(), this.config.dataDir);
      if (report.buildsRemoved || report.blobsRemoved)
        this.logger.log(`retention removed ${report.buildsRemoved} build(s), ${report.blobsRemoved} blob(s), ${report.bytesFreed} bytes`);
    } catch (e) {
      this.logger.error(`retention: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
