/** The dashboard's HTML pages, feeds and badges. */
import { Controller, Get, Inject, NotFoundException, Param, Query, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS } from '@cairn/service-kit';
import { OperatorActions } from '../actions/operator-actions.js';
import { AccessGuard, Needs } from '../auth/access-guard.js';
import { BlobStore } from '../blobs/blob-store.js';
import type { ResultsConfig } from '../config.js';
import { parseBuildId } from '../ids.js';
import { LiveBoard } from '../live/live-board.js';
import { logExists } from '../live/log-stream.js';
import { SchedulerViews } from '../live/scheduler-views.js';
import { ResultsMetrics } from '../ops/results-metrics.js';
import { failuresFeed } from '../pages/atom-feed.js';
import { statusBadge } from '../pages/badge.js';
import { liveBuildPage, specFileName } from '../pages/build-page.js';
import { BuildPages } from '../pages/build-pages.js';
import { Comparer } from '../pages/comparer.js';
import { dashboardPage } from '../pages/dashboard-page.js';
import { buildExtras, withExtras } from '../pages/operator-pages.js';
import { buildsPage, failuresPage, jobPage, jobsPage } from '../pages/list-pages.js';
import type { PageBytes } from '../pages/prerendered-pages.js';
import { BuildQueries } from '../queries/build-queries.js';
import { CONFIG } from '../tokens.js';
import { assets } from '../view/assets.js';
import { Html } from '../view/html.js';
import { baseUrl } from './base-url.js';
import { compareOrBusy } from './compare-or-busy.js';
import { buildFilter, jobFilter } from './filters.js';
import { HtmlErrorFilter } from './html-error.filter.js';
import { viewerOf } from './operator.controller.js';
import { PageCache } from './page-cache.js';
import { DOCUMENT_CSP, HTML, send, sendCached } from './respond.js';

const LIST_CACHE_MS = 1000;

@Controller()
@UseGuards(AccessGuard)
@UseFilters(HtmlErrorFilter)
export class PagesController {
  constructor(
    @Inject(BuildQueries) private readonly queries: BuildQueries,
    @Inject(LiveBoard) private readonly live: LiveBoard,
    @Inject(SchedulerViews) private readonly scheduler: SchedulerViews,
    @Inject(BlobStore) private readonly blobs: BlobStore,
    @Inject(ResultsMetrics) private readonly metrics: ResultsMetrics,
    @Inject(CONFIG) private readonly config: ResultsConfig,
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(PageCache) private readonly cache: PageCache,
    @Inject(BuildPages) private readonly buildPages: BuildPages,
    @Inject(Comparer) private readonly comparer: Comparer,
    @Inject(OperatorActions) private readonly actions: OperatorActions,
  ) {}

  /**
   * Renders a page and sends it; with `cacheMs`, sends instead the copy rendered less
   * than `cacheMs` ago, or waits for the render another request has under way.
   */
  private async page(route: string, req: Request, res: Response, render: () => Promise<Html | PageBytes>, cacheMs = 0): Promise<void> {
    const end = this.metrics.httpLatency.startTimer({ route });
    try {
      if (cacheMs > 0) {
        // The page's absolute links follow the Host the request named (when no public URL is
        // set): a page rendered for one Host must never be served to a request for another.
        const page = await this.cache.getOrRender(`${route} ${baseUrl(this.config, req)} ${req.originalUrl}`, async () => {
          const rendered = await render();
          return rendered instanceof Html ? { body: rendered.value, ttlMs: cacheMs } : { body: rendered.body, gzip: rendered.gzip, ttlMs: cacheMs };
        });
        return sendCached(req, res, this.cache, page, HTML);
      }
      const rendered = await render();
      if (rendered instanceof Html) return send(req, res, rendered.value, { type: HTML });
      // A stored build's page, sent with the gzip saved beside it. Not kept in the memory
      // cache: each one was put there and never read again, and a stream of first views
      // churned 2,000 entries of ~15 KB through the old generation (major GCs of ~20 ms,
      // stalling every request under way); its saved copy is one file read away.
      sendCached(req, res, this.cache, { body: rendered.body, gzip: rendered.gzip, status: 200, expires: 0 }, HTML);
    } finally {
      end();
    }
  }

  @Get()
  async dashboard(@Req() req: Request, @Res() res: Response): Promise<void> {
    await this.page('dashboard', req, res, async () => {
      const [pools, workers, queues, recent] = await Promise.all([
        this.scheduler.pools(),
        this.scheduler.workers(),
        this.scheduler.queues(),
        this.queries.listBuilds({ limit: 10 }),
      ]);
      return dashboardPage({ live: this.live.active(), pools, workers, queues, recent: recent.items });
    });
  }

  @Get('builds')
  async builds(@Query() query: Record<string, unknown>, @Req() req: Request, @Res() res: Response): Promise<void> {
    const filter = buildFilter(query);
    await this.page(
      'builds',
      req,
      res,
      async () => {
        const [facets, builds, total] = await Promise.all([this.queries.facets(), this.queries.listBuilds(filter), this.queries.countMatching(filter)]);
        return buildsPage(filter, facets, builds, total);
      },
      LIST_CACHE_MS,
    );
  }

  @Get('builds/:id')
  async build(@Param('id') raw: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const id = parseBuildId(raw);
    if (!id) throw new NotFoundException(`build ${JSON.stringify(raw)}: not a build ID (j-...)`);
    await this.page('build', req, res, async () => {
      const [stored, retryOf] = await Promise.all([this.buildPages.get(id, baseUrl(this.config, req)), this.actions.retryOf(id)]);
      const live = this.live.get(id);
      if (stored) return withExtras(stored, buildExtras(viewerOf(req), id, { live, stored: true, retryOf }));
      if (!live && !(await this.logExists(id))) throw new NotFoundException(`build ${id}: not stored, not queued or running`);
      return withExtras(liveBuildPage(id, live), buildExtras(viewerOf(req), id, { live, stored: false, retryOf }));
    });
  }

  @Get('builds/:id/spec')
  async spec(@Param('id') raw: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const id = parseBuildId(raw);
    const build = id && (await this.queries.getBuild(id));
    if (!build) throw new NotFoundException(`build ${JSON.stringify(raw)}: not stored`);
    res.setHeader('Content-Disposition', `attachment; filename="${specFileName(build.job)}"`);
    send(req, res, build.spec, { type: 'text/plain; charset=utf-8', maxAge: 3600 });
  }

  @Get('builds/:id/log.txt')
  async rawLog(@Param('id') raw: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const id = parseBuildId(raw);
    const build = id && (await this.queries.getBuild(id));
    if (!build?.logSha256) throw new NotFoundException(`build ${JSON.stringify(raw)}: no stored log`);
    const blob = await this.blobs.openVerified(build.logSha256);
    if (!blob) throw new NotFoundException(`build ${build.id}: its log blob ${build.logSha256} is missing from the store`);
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('Content-Length', blob.size);
    // A log is whatever the build printed, HTML included: never a document that runs anything.
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Security-Policy', DOCUMENT_CSP);
    blob.stream().pipe(res);
  }

  @Get('jobs')
  async jobs(@Query() query: Record<string, unknown>, @Req() req: Request, @Res() res: Response): Promise<void> {
    const filter = jobFilter(query);
    await this.page('jobs', req, res, async () => jobsPage(filter.q, filter.state, await this.queries.listJobs(filter)), LIST_CACHE_MS);
  }

  @Get('jobs/:name')
  async job(@Param('name') name: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    await this.page(
      'job',
      req,
      res,
      async () => {
        const job = await this.queries.job(name);
        if (!job) throw new NotFoundException(`job ${JSON.stringify(name)}: no build of it is stored`);
        return jobPage(job, await this.queries.history(name, 100), baseUrl(this.config, req));
      },
      LIST_CACHE_MS,
    );
  }

  @Get('jobs/:name/badge.svg')
  async badge(@Param('name') name: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const job = await this.queries.job(name);
    send(req, res, statusBadge(name, job?.lastState ?? null), { type: 'image/svg+xml; charset=utf-8', maxAge: 60, status: job ? 200 : 404 });
  }

  @Get('compare')
  async compare(@Query('a') a: string, @Query('b') b: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const ida = parseBuildId(String(a ?? ''));
    const idb = parseBuildId(String(b ?? ''));
    if (!ida || !idb) throw new NotFoundException('compare: give two build IDs as ?a=j-...&b=j-...');
    await this.page('compare', req, res, async () => {
      return compareOrBusy(res, () =>
        this.comparer.get('page', ida, idb, async () => {
          const [ba, bb] = await Promise.all([this.queries.getBuild(ida), this.queries.getBuild(idb)]);
          if (!ba || !bb) throw new NotFoundException(`compare: build ${!ba ? ida : idb} is not stored`);
          return [ba, bb];
        }),
      );
    });
  }

  @Get('failures')
  async failures(@Query() query: Record<string, unknown>, @Req() req: Request, @Res() res: Response): Promise<void> {
    const { before } = buildFilter(query);
    await this.page('failures', req, res, async () => failuresPage(await this.queries.failures(50, before), before), LIST_CACHE_MS);
  }

  @Get('failures.atom')
  async failuresAtom(@Req() req: Request, @Res() res: Response): Promise<void> {
    const failures = await this.queries.failures(50);
    send(req, res, failuresFeed(baseUrl(this.config, req), failures.items), { type: 'application/atom+xml; charset=utf-8', maxAge: 60 });
  }

  @Get(assets.css.path)
  @Needs('public')
  css(@Req() req: Request, @Res() res: Response): void {
    send(req, res, assets.css.body, { type: assets.css.type, immutable: true });
  }

  @Get(assets.js.path)
  @Needs('public')
  js(@Req() req: Request, @Res() res: Response): void {
    send(req, res, assets.js.body, { type: assets.js.type, immutable: true });
  }

  private logExists(id: string): Promise<boolean> {
    return logExists(this.bus, id).catch(() => false);
  }
}
