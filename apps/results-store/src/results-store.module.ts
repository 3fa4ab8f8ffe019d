/**
 * The results-store as a Nest module: the bus, the database and the blob store come in
 * ready (opened and migrated by service.ts); the module wires the ingest, the live
 * board, the pages and the API around them.
 */
import { Module, RequestMethod, type DynamicModule, type LoggerService, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS, Ops, OpsModule } from '@cairn/service-kit';
import type { DataSource } from 'typeorm';
import { ApiController } from './api/api.controller.js';
import { ServicesController } from './api/services.controller.js';
import { UploadController } from './api/upload.controller.js';
import { AccessGuard, Authorizer } from './auth/access-guard.js';
import { HttpHardening, HttpSettings } from './auth/http-hardening.js';
import { FailureThrottle } from './auth/throttle.js';
import { LoginController } from './auth/login.controller.js';
import { TokenService } from './auth/token-service.js';
import { BlobStore } from './blobs/blob-store.js';
import type { ResultsConfig } from './config.js';
import { UploadHooks } from './hooks/upload-hooks.js';
import { Ingest } from './ingest/ingest.js';
import { ResultConsumer } from './ingest/result-consumer.js';
import { LiveBoard } from './live/live-board.js';
import { BackfillProgress, backfillProgressPath } from './maintenance/backfill-progress.js';
import { PageBackfill } from './maintenance/page-backfill.js';
import { RequestActivity } from './ops/request-activity.js';
import { LiveController } from './live/live.controller.js';
import { SchedulerViews } from './live/scheduler-views.js';
import { ResultsLifecycle } from './results-lifecycle.js';
import { ResultsMetrics } from './ops/results-metrics.js';
import { BuildQueries } from './queries/build-queries.js';
import { CONFIG, DATA_SOURCE, LOGGER } from './tokens.js';
import { PagesController } from './web/pages.controller.js';
import { BuildPages } from './web/build-pages.js';
import { PageCache } from './web/page-cache.js';
import { SseHub } from './web/sse-hub.js';
import { Comparer } from './web/comparer.js';

export interface ResultsStoreParts {
  readonly config: ResultsConfig;
  readonly ds: DataSource;
  readonly blobs: BlobStore;
  readonly logger: LoggerService;
}

export function resultsStoreModule(bus: NatsConnection, parts: ResultsStoreParts): DynamicModule {
  @Module({
    imports: [OpsModule],
    // The API controller is listed before the pages so that its fixed paths win over the pages' parameters.
    controllers: [ApiController, ServicesController, UploadController, LiveController, LoginController, PagesController],
    providers: [
      { provide: BUS, useValue: bus },
      { provide: CONFIG, useValue: parts.config },
      { provide: DATA_SOURCE, useValue: parts.ds },
      { provide: LOGGER, useValue: parts.logger },
      { provide: BlobStore, useValue: parts.blobs },
      { provide: SseHub, useValue: new SseHub() },
      { provide: PageCache, useValue: new PageCache() },
      { provide: Comparer, useValue: new Comparer(parts.config.compare) },
      { provide: ResultsMetrics, useFactory: (ops: Ops) => new ResultsMetrics(ops.metrics), inject: [Ops] },
      { provide: BuildQueries, useFactory: (ds: DataSource) => new BuildQueries(ds), inject: [DATA_SOURCE] },
      {
        provide: BuildPages,
        useFactory: (queries: BuildQueries) => new BuildPages(queries, parts.blobs, parts.config.dataDir, parts.config.publicUrl, (m) => parts.logger.error(m)),
        inject: [BuildQueries],
      },
      { provide: RequestActivity, useValue: new RequestActivity() },
      {
        provide: PageBackfill,
        useFactory: (queries: BuildQueries, pages: BuildPages, metrics: ResultsMetrics, activity: RequestActivity) =>
          new PageBackfill({
            queries,
            pages,
            progress: new BackfillProgress(backfillProgressPath(parts.config.dataDir)),
            metrics,
            activity,
            logger: parts.logger,
            ...parts.config.backfill,
          }),
        inject: [BuildQueries, BuildPages, ResultsMetrics, RequestActivity],
      },
      { provide: TokenService, useFactory: (ds: DataSource) => new TokenService(ds), inject: [DATA_SOURCE] },
      { provide: LiveBoard, useFactory: () => new LiveBoard(bus) },
      { provide: SchedulerViews, useFactory: () => new SchedulerViews(bus, parts.config.adminTimeoutMs) },
      {
        provide: UploadHooks,
        useFactory: (metrics: ResultsMetrics) => new UploadHooks(parts.config.hooksDir, parts.config.hookTimeoutMs, parts.logger, metrics),
        inject: [ResultsMetrics],
      },
      {
        provide: Ingest,
        useFactory: (metrics: ResultsMetrics, hooks: UploadHooks, live: LiveBoard, pages: PageCache, buildPages: BuildPages) =>
          new Ingest({
            ds: parts.ds,
            blobs: parts.blobs,
            bus,
            metrics,
            hooks,
            logger: parts.logger,
            onStored: (build) => {
              pages.clear();
              live.noteStored(build);
              // In the background: storing is done, and a failure here only means the first reader renders the page.
              void buildPages.prerender(build).catch((e: unknown) => parts.logger.error(`rendering the page of build ${build}: ${e instanceof Error ? e.message : String(e)}`));
            },
            ...(parts.config.publicUrl ? { publicUrl: parts.config.publicUrl } : {}),
          }),
        inject: [ResultsMetrics, UploadHooks, LiveBoard, PageCache, BuildPages],
      },
      {
        provide: ResultConsumer,
        useFactory: (ingest: Ingest, metrics: ResultsMetrics) => new ResultConsumer(bus, ingest, parts.config.durable, parts.logger, metrics, parts.config.ackWaitMs),
        inject: [Ingest, ResultsMetrics],
      },
      { provide: FailureThrottle, useValue: new FailureThrottle() },
      Authorizer,
      AccessGuard,
      HttpHardening,
      HttpSettings,
      ResultsLifecycle,
    ],
  })
  class ResultsStoreModule implements NestModule {
    configure(consumer: MiddlewareConsumer): void {
      consumer.apply(HttpHardening).forRoutes({ path: '*', method: RequestMethod.ALL });
    }
  }
  return { module: ResultsStoreModule };
}
