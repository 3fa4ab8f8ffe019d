/**
 * The operator's pages (workers, pools, clients, charts, the audit log) and the dashboard's actions.
 * An action is a POST from a form on those pages (or from a script with a Bearer token):
 * the access guard checks the role, checkCsrf the form's session-bound token, and the
 * answer sends a browser back to the page it came from (303), or says why not.
 */
import { BadRequestException, Body, Controller, Get, Inject, NotFoundException, Param, Post, Query, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import { ClientId, PoolName, WorkerId } from '@cairn/contracts';
import { OperatorActions, type ActionOutcome, type PoolVerb, type WorkerVerb } from '../actions/operator-actions.js';
import { AccessGuard, Needs, type AuthedRequest } from '../auth/access-guard.js';
import { checkCsrf, csrfTokenOf } from '../auth/csrf.js';
import type { Principal } from '../auth/token-service.js';
import { parseBuildId } from '../ids.js';
import { LiveBoard } from '../live/live-board.js';
import { SchedulerViews } from '../live/scheduler-views.js';
import { actionRefusedPage, auditPage, clientsPage, imagePage, imagesPage, poolPage, workerPage, workersPage, type Viewer } from '../pages/operator-pages.js';
import { BuildQueries } from '../queries/build-queries.js';
import { WorkerHistory } from '../queries/worker-history.js';
import { isRange, RANGES } from '../rollups/chart-data.js';
import { BuildPages } from '../pages/build-pages.js';
import { ChartPages } from '../pages/chart-pages.js';
import { HtmlErrorFilter } from './html-error.filter.js';
import { PageCache } from './page-cache.js';
import { HTML, send, sendCached, sendJson } from './respond.js';

const AUDIT_PAGE = 50;
/** Lines of a failed base-image build's log on its image's page. */
const FAILED_LOG_LINES = 40;
const VERBS = new Set(['pause', 'unpause', 'drain']);

/** Who is looking at a page, for the buttons it shows. */
export function viewerOf(req: Request): Viewer {
  const principal = (req as AuthedRequest).principal;
  const csrf = csrfTokenOf(req);
  return principal ? { user: principal.user, role: principal.role, ...(csrf ? { csrf } : {}) } : {};
}

/** Where to send the browser back to: a path on this site only. */
function backOf(body: unknown, fallback: string): string {
  const back = (body as { back?: unknown } | undefined)?.back;
  return typeof back === 'string' && /^\/(?![/\\])[^\s]*$/.test(back) ? back : fallback;
}

function checked<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { message: string }[] } } },
  value: unknown,
  what: string,
): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new NotFoundException(`${what} ${JSON.stringify(value)}: ${parsed.error.issues[0]?.message ?? 'not valid'}`);
  return parsed.data;
}

@Controller()
@UseGuards(AccessGuard)
@UseFilters(HtmlErrorFilter)
export class OperatorController {
  constructor(
    @Inject(OperatorActions) private readonly actions: OperatorActions,
    @Inject(SchedulerViews) private readonly scheduler: SchedulerViews,
    @Inject(LiveBoard) private readonly live: LiveBoard,
    @Inject(WorkerHistory) private readonly history: WorkerHistory,
    @Inject(BuildQueries) private readonly queries: BuildQueries,
    @Inject(ChartPages) private readonly chartPages: ChartPages,
    @Inject(PageCache) private readonly pages: PageCache,
    @Inject(BuildPages) private readonly buildPages: BuildPages,
  ) {}

  @Get('workers')
  async workers(@Req() req: Request, @Res() res: Response): Promise<void> {
    send(req, res, workersPage(await this.scheduler.workers()).value, { type: HTML });
  }

  @Get('workers/:worker')
  async worker(@Param('worker') raw: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const id = checked(WorkerId, raw, 'worker');
    const workers = await this.scheduler.workers();
    if (!workers.ok) throw new NotFoundException(`worker ${id}: the scheduler's list of workers is unavailable (${workers.error})`);
    const worker = workers.value.find((w) => w.worker === id);
    if (!worker) throw new NotFoundException(`worker ${id}: the scheduler does not know it`);
    send(req, res, workerPage(viewerOf(req), worker, await this.history.recentFailures(id)).value, { type: HTML });
  }

  @Get('pools/:pool')
  async pool(@Param('pool') raw: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const name = checked(PoolName, raw, 'pool');
    const [pools, workers] = await Promise.all([this.scheduler.pools(), this.scheduler.workers()]);
    if (!pools.ok) throw new NotFoundException(`pool ${name}: the scheduler's list of pools is unavailable (${pools.error})`);
    const pool = pools.value.find((p) => p.pool === name);
    if (!pool) throw new NotFoundException(`pool ${name}: the scheduler does not know it`);
    const members = workers.ok ? workers.value.filter((w) => w.pool === name) : [];
    const queued = this.live.active().filter((j) => j.pool === name && j.state === 'queued');
    send(req, res, poolPage(viewerOf(req), pool, members, queued).value, { type: HTML });
  }

  @Get('charts')
  async charts(@Query('range') range: unknown, @Query('pool') pool: unknown, @Req() req: Request, @Res() res: Response): Promise<void> {
    const chosen = range === undefined ? '24h' : range;
    if (!isRange(chosen)) throw new NotFoundException(`charts: range ${JSON.stringify(range)} is not one of ${Object.keys(RANGES).join(', ')}`);
    const name = pool === undefined || pool === '' ? undefined : checked(PoolName, pool, 'pool');
    sendCached(req, res, this.pages, { ...(await this.chartPages.get(chosen, name)), status: 200, expires: 0 }, HTML);
  }

  @Get('clients')
  async clients(@Req() req: Request, @Res() res: Response): Promise<void> {
    send(req, res, clientsPage(viewerOf(req), await this.scheduler.clients()).value, { type: HTML });
  }

  @Get('images')
  async images(@Req() req: Request, @Res() res: Response): Promise<void> {
    send(req, res, imagesPage(viewerOf(req), await this.actions.images()).value, { type: HTML });
  }

  /** `/images/debian%3Abookworm`: names have colons and slashes, so the link encodes them. */
  @Get('images/:name')
  async image(@Param('name') name: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const images = await this.actions.images();
    if (!images.ok) throw new NotFoundException(`base image ${name}: the base-image-builder's list is unavailable (${images.error})`);
    const image = images.value.find((i) => i.name === name);
    if (!image) throw new NotFoundException(`base image ${name}: not an image of the matrix (${images.value.map((i) => i.name).join(', ')})`);
    // Why it failed, without a click: the end of the failed build's log, when it is stored here.
    const failed = image.failure?.job === undefined ? undefined : parseBuildId(image.failure.job);
    const failedLog = failed ? await this.buildPages.logTail(failed, FAILED_LOG_LINES) : undefined;
    send(req, res, imagePage(viewerOf(req), image, failedLog).value, { type: HTML });
  }

  @Get('audit')
  @Needs('operate')
  async audit(@Query('before') before: unknown, @Req() req: Request, @Res() res: Response): Promise<void> {
    const cursor = typeof before === 'string' && /^\d{1,15}$/.test(before) ? Number(before) : undefined;
    const entries = await this.actions.audit(AUDIT_PAGE + 1, cursor);
    const more = entries.length > AUDIT_PAGE;
    const shown = entries.slice(0, AUDIT_PAGE);
    send(req, res, auditPage(shown, more ? shown[shown.length - 1]!.id : undefined).value, { type: HTML });
  }

  // ---- actions -------------------------------------------------------------------------

  @Post('actions/jobs/:id/cancel')
  @Needs('operate')
  async cancel(@Param('id') raw: string, @Body() body: unknown, @Req() req: AuthedRequest, @Res() res: Response): Promise<void> {
    checkCsrf(req, body);
    const id = parseBuildId(raw);
    if (!id) throw new NotFoundException(`job ${JSON.stringify(raw)}: not a job ID (j-...)`);
    this.answer(req, res, body, `/builds/${id}`, await this.actions.cancelJob(principalOf(req), id));
  }

  @Post('actions/builds/:id/retry')
  @Needs('operate')
  async retry(@Param('id') raw: string, @Body() body: unknown, @Req() req: AuthedRequest, @Res() res: Response): Promise<void> {
    checkCsrf(req, body);
    const id = parseBuildId(raw);
    const build = id && (await this.queries.getBuild(id));
    if (!build) throw new NotFoundException(`build ${JSON.stringify(raw)}: not stored, so there is nothing to retry`);
    const outcome = await this.actions.retryBuild(principalOf(req), build);
    // The browser goes on to the new build, whose page links back to this one.
    this.answer(req, res, body, outcome.build ? `/builds/${outcome.build}` : `/builds/${id}`, outcome, Boolean(outcome.build));
  }

  @Post('actions/workers/:worker/:verb')
  @Needs('operate')
  async worker_(
    @Param('worker') raw: string,
    @Param('verb') verb: string,
    @Body() body: unknown,
    @Req() req: AuthedRequest,
    @Res() res: Response,
  ): Promise<void> {
    checkCsrf(req, body);
    const worker = checked(WorkerId, raw, 'worker');
    if (!VERBS.has(verb)) throw new NotFoundException(`worker action ${JSON.stringify(verb)}: expected pause, unpause or drain`);
    this.answer(req, res, body, `/workers/${encodeURIComponent(worker)}`, await this.actions.worker(principalOf(req), worker, verb as WorkerVerb));
  }

  @Post('actions/pools/:pool/:verb')
  @Needs('operate')
  async pool_(@Param('pool') raw: string, @Param('verb') verb: string, @Body() body: unknown, @Req() req: AuthedRequest, @Res() res: Response): Promise<void> {
    checkCsrf(req, body);
    const pool = checked(PoolName, raw, 'pool');
    if (!VERBS.has(verb)) throw new NotFoundException(`pool action ${JSON.stringify(verb)}: expected pause, unpause or drain`);
    this.answer(req, res, body, `/pools/${encodeURIComponent(pool)}`, await this.actions.pool(principalOf(req), pool, verb as PoolVerb));
  }

  /** The image in the form's `image` field (names have slashes): a name, or `all`. */
  @Post('actions/images/rebuild')
  @Needs('operate')
  async rebuildImage(@Body() body: unknown, @Req() req: AuthedRequest, @Res() res: Response): Promise<void> {
    checkCsrf(req, body);
    const image = (body as { image?: unknown } | undefined)?.image;
    if (typeof image !== 'string' || !/^\S{1,200}$/.test(image))
      throw new BadRequestException('image: the name of a base image (1-200 characters, no spaces), or all');
    this.answer(req, res, body, '/images', await this.actions.rebuildImages(principalOf(req), image));
  }

  @Post('actions/clients/:client/rate')
  @Needs('admin')
  async rate(@Param('client') raw: string, @Body() body: unknown, @Req() req: AuthedRequest, @Res() res: Response): Promise<void> {
    checkCsrf(req, body);
    const client = checked(ClientId, raw, 'client');
    const rate = Number((body as { rate?: unknown } | undefined)?.rate);
    if (!Number.isFinite(rate) || rate <= 0 || rate > 1e6) throw new BadRequestException(`client ${client}: rate must be a number above 0, at most 1000000`);
    this.answer(req, res, body, '/clients', await this.actions.clientRate(principalOf(req), client, rate));
  }

  /**
   * A script (Bearer) gets JSON; a browser goes back to the page (303) when the action
   * was done, or gets a page saying why not.
   */
  private answer(req: Request, res: Response, body: unknown, fallback: string, outcome: ActionOutcome, follow = false): void {
    const status = outcome.result === 'ok' ? 200 : outcome.result === 'refused' ? 409 : 503;
    if (req.headers.authorization !== undefined) return sendJson(req, res, outcome, status);
    const back = follow ? fallback : backOf(body, fallback);
    if (outcome.result === 'ok') return res.redirect(303, back);
    send(req, res, actionRefusedPage(outcome.message, back).value, { type: HTML, status });
  }
}

function principalOf(req: AuthedRequest): Principal {
  // The guard let the request through with an operate or admin need: it is signed in.
  return req.principal!;
}
