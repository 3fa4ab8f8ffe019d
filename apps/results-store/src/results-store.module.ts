/**
 * The results-store as a Nest module: the bus, the database and the blob store come in
 * ready (opened and migrated by service.ts) as values; every other piece is a class Nest
 * builds and injects, reading its settings from CONFIG.
 *
 * The folders, in layers; a file imports from its own folder and from layers below it,
 * never above (test/layering.test.ts holds to it):
 *
 *   api/, http/    controllers. api/: the JSON API, its schemas and OpenAPI document;
 *                  http/: the controllers of the pages, the live events and signing in,
 *                  and what every controller shares (sending with gzip and cache
 *                  headers, the page cache, query-string filters, the error page
 *                  filter). api/ uses http/'s helpers; http/ never imports api/.
 *   pages/         renderers, data in and HTML (or SVG, Atom) out, and the services that
 *                  keep rendered pages: saved build pages, compares in worker threads.
 *   view/          what the renderers share: HTML escaping, the layout with its stylesheet
 *                  and script (browser/app.ts), ANSI colours, a log cut into steps.
 *   maintenance/   the page backfill and retention: they keep saved pages, so they use
 *                  pages/, and nothing above it.
 *   live/, queries/, auth/, ingest/, ops/, hooks/, blobs/, db/
 *                  the data beneath: none imports anything of the layers above.
 *
 * This file, service.ts, results-lifecycle.ts and stored-build-fanout.ts wire the layers.
 */
import { Module, RequestMethod, type DynamicModule, type LoggerService, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS, Ops, OpsModule } from '@cairn/service-kit';
import { Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { ApiController } from './api/api.controller.js';
import { ServicesController } from './api/services.controller.js';
import { UploadController } from './api/upload.controller.js';
import { AccessGuard, Authorizer } from './auth/access-guard.js';
import { HttpHardening, HttpSettings } from './auth/http-hardening.js';
import { FailureThrottle } from './auth/throttle.js';
import { LoginController } from './http/login.controller.js';
import { TokenService } from './auth/token-service.js';
import { BlobStore } from './blobs/blob-store.js';
import type { ResultsConfig } from './config.js';
import { UploadHooks } from './hooks/upload-hooks.js';
import { Ingest, STORED_LISTENER } from './ingest/ingest.js';
import { ResultConsumer } from './ingest/result-consumer.js';
import { LiveBoard } from './live/live-board.js';
import { PageBackfill } from './maintenance/page-backfill.js';
import { RequestActivity } from './ops/request-activity.js';
import { LiveController } from './http/live.controller.js';
import { SchedulerViews } from './live/scheduler-views.js';
import { ResultsLifecycle } from './results-lifecycle.js';
import { ResultsMetrics } from './ops/results-metrics.js';
import { BuildQueries } from './queries/build-queries.js';
import { StoredBuildFanout } from './stored-build-fanout.js';
import { CONFIG, DATA_SOURCE, LOGGER } from './tokens.js';
import { PagesController } from './http/pages.controller.js';
import { BuildPages } from './pages/build-pages.js';
import { PageCache } from './http/page-cache.js';
import { SseHub } from './live/sse-hub.js';
import { Comparer } from './pages/comparer.js';
import { OperatorActions } from './actions/operator-actions.js';
import { OperatorController } from './http/operator.controller.js';
import { WorkerHistory } from './queries/worker-history.js';
import { ChartPages } from './pages/chart-pages.js';
import { RollupSampler } from './rollups/rollup-sampler.js';

export interface ResultsStoreParts {
  readonly config: ResultsConfig;
  readonly ds: DataSource;
  readonly blobs: BlobStore;
  readonly logger: LoggerService;
}

@Module({})
export class ResultsStoreModule implements NestModule {
  static forRoot(bus: NatsConnection, parts: ResultsStoreParts): DynamicModule {
    return {
      module: ResultsStoreModule,
      imports: [OpsModule],
      // The API controller is listed before the pages so that its fixed paths win over the pages' parameters.
      controllers: [ApiController, ServicesController, UploadController, LiveController, LoginController, OperatorController, PagesController],
      providers: [
        { provide: BUS, useValue: bus },
        { provide: CONFIG, useValue: parts.config },
        { provide: DATA_SOURCE, useValue: parts.ds },
        { provide: LOGGER, useValue: parts.logger },
        { provide: BlobStore, useValue: parts.blobs },
        // The results-store's metrics go on the registry /metrics serves.
        { provide: Registry, useFactory: (ops: Ops) => ops.metrics, inject: [Ops] },
        { provide: STORED_LISTENER, useExisting: StoredBuildFanout },
        SseHub,
        PageCache,
        Comparer,
        ResultsMetrics,
        BuildQueries,
        BuildPages,
        RequestActivity,
        PageBackfill,
        TokenService,
        LiveBoard,
        SchedulerViews,
        UploadHooks,
        StoredBuildFanout,
        Ingest,
        ResultConsumer,
        FailureThrottle,
        Authorizer,
        AccessGuard,
        HttpHardening,
        HttpSettings,
        ResultsLifecycle,
        OperatorActions,
        WorkerHistory,
        ChartPages,
        RollupSampler,
      ],
    };
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(HttpHardening).forRoutes({ path: '*', method: RequestMethod.ALL });
  }
}
