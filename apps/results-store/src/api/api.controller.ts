/**
 * The JSON API: everything the pages show, as data (documented in openapi.ts from the
 * schemas in schemas.ts, and served at /openapi.json). Reads follow CAIRN_RESULTS_READ;
 * writes need a token.
 */
import {
  BadRequestException,
  Body,
  ConflictException,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Post,
  Put,
  Query,
  Req,
  Res,
  UnsupportedMediaTypeException,
  UseGuards,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { AccessGuard } from '../auth/access-guard.js';
import type { DataSource } from 'typeorm';
import { Needs } from '../auth/access-guard.js';
import { RoleConflictError, TokenService } from '../auth/token-service.js';
import { BlobStore, TamperedBlobError } from '../blobs/blob-store.js';
import type { ResultsConfig } from '../config.js';
import { exclusiveWrite } from '../db/exclusive-write.js';
import { BuildTagEntity, TagEntity } from '../db/tag.entity.js';
import { parseBuildId, type BuildId, type TokenId } from '../ids.js';
import { LiveBoard } from '../live/live-board.js';
import { SchedulerViews, type View } from '../live/scheduler-views.js';
import { ResultsMetrics } from '../ops/results-metrics.js';
import { BuildQueries } from '../queries/build-queries.js';
import { CONFIG, DATA_SOURCE } from '../tokens.js';
import { buildFilter, jobFilter } from '../http/filters.js';
import { reproduction } from '../pages/build-page.js';
import { baseUrl } from '../http/base-url.js';
import { PageCache } from '../http/page-cache.js';
import { Comparer } from '../pages/comparer.js';
import { compareOrBusy } from '../http/compare-or-busy.js';
import { DOCUMENT_CSP, JSON_TYPE, sendCached, sendJson } from '../http/respond.js';
import { openApiDocument } from './openapi.js';
import { TokenRequest } from './schemas.js';

const TAG = /^[A-Za-z0-9._-]{1,64}$/;

function buildIdOf(raw: string): BuildId {
  const id = parseBuildId(raw);
  if (!id) throw new BadRequestException(`build ${JSON.stringify(raw)}: not a build ID (j-<letters and digits>)`);
  return id;
}

@Controller()
@UseGuards(AccessGuard)
export class ApiController {
  constructor(
    @Inject(BuildQueries) private readonly queries: BuildQueries,
    @Inject(BlobStore) private readonly blobs: BlobStore,
    @Inject(LiveBoard) private readonly live: LiveBoard,
    @Inject(SchedulerViews) private readonly scheduler: SchedulerViews,
    @Inject(TokenService) private readonly tokens: TokenService,
    @Inject(ResultsMetrics) private readonly metrics: ResultsMetrics,
    @Inject(DATA_SOURCE) private readonly ds: DataSource,
    @Inject(CONFIG) private readonly config: ResultsConfig,
    @Inject(PageCache) private readonly pages: PageCache,
    @Inject(Comparer) private readonly comparer: Comparer,
  ) {}

  @Get('openapi.json')
  @Needs('public')
  openapi(@Req() req: Request, @Res() res: Response): void {
    sendJson(req, res, openApiDocument(baseUrl(this.config, req)));
  }

  @Get('api/v1/builds')
  async builds(@Query() query: Record<string, unknown>, @Req() req: Request, @Res() res: Response): Promise<void> {
    const end = this.metrics.httpLatency.startTimer({ route: 'api-builds' });
    sendJson(req, res, await this.queries.listBuilds(buildFilter(query)));
    end();
  }

  @Get('api/v1/builds/:id')
  async build(@Param('id') raw: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const build = await this.queries.getBuild(buildIdOf(raw));
    if (!build) throw new NotFoundException(`build ${raw}: not stored`);
    const base = baseUrl(this.config, req);
    // The log's index is how the page renders it, not part of the API's build.
    const { logIndex: _logIndex, ...shown } = build;
    sendJson(req, res, {
      ...shown,
      reproduce: reproduction(build, base),
      links: {
        page: `${base}/builds/${build.id}`,
        log: build.logSha256 ? `${base}/builds/${build.id}/log.txt` : null,
        spec: `${base}/builds/${build.id}/spec`,
        artifacts: build.artifacts.map((a) => `${base}/api/v1/builds/${build.id}/artifacts/${a.path.split('/').map(encodeURIComponent).join('/')}`),
      },
    });
  }

  @Get('api/v1/builds/:id/artifacts/*path')
  async artifact(@Param('id') raw: string, @Param('path') rawPath: string | string[], @Req() req: Request, @Res() res: Response): Promise<void> {
    const id = buildIdOf(raw);
    const path = Array.isArray(rawPath) ? rawPath.join('/') : rawPath;
    const artifact = await this.queries.artifact(id, path);
    if (!artifact) throw new NotFoundException(`build ${id}: no artifact ${JSON.stringify(path)}`);
    const etag = `"sha256-${artifact.sha256}"`;
    if (req.headers['if-none-match'] === etag) {
      res.status(304).end();
      return;
    }
    let blob;
    try {
      blob = await this.blobs.openVerified(artifact.sha256);
    } catch (e) {
      if (e instanceof TamperedBlobError) {
        res.status(500).json({ statusCode: 500, message: `build ${id}: artifact ${path} failed its SHA-256 check and is not served (run verify)` });
        return;
      }
      throw e;
    }
    if (!blob) throw new NotFoundException(`build ${id}: the blob of artifact ${path} (${artifact.sha256}) is missing from the store`);
    const name = path.split('/').pop() ?? 'artifact';
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', blob.size);
    res.setHeader('Content-Disposition', `attachment; filename="${name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`);
    res.setHeader('ETag', etag);
    res.setHeader('X-Checksum-Sha256', artifact.sha256);
    res.setHeader('Digest', `sha-256=${Buffer.from(artifact.sha256, 'hex').toString('base64')}`);
    res.setHeader('Cache-Control', 'private, max-age=31536000, immutable');
    // Artifacts are the builds' bytes, served as downloads: never sniffed into a page, never run.
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Security-Policy', DOCUMENT_CSP);
    blob.stream().pipe(res);
  }

  @Get('api/v1/jobs')
  async jobs(@Query() query: Record<string, unknown>, @Req() req: Request, @Res() res: Response): Promise<void> {
    const filter = jobFilter(query);
    sendJson(req, res, await this.queries.listJobs(filter));
  }

  @Get('api/v1/jobs/:name')
  async job(@Param('name') name: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const job = await this.queries.job(name);
    if (!job) throw new NotFoundException(`job ${JSON.stringify(name)}: no build of it is stored`);
    const history = await this.queries.history(name, 100);
    const succeeded = history.filter((b) => b.state === 'succeeded').length;
    sendJson(req, res, { ...job, history, successRate: history.length ? succeeded / history.length : null });
  }

  @Get('api/v1/compare')
  async compare(@Query('a') a: string, @Query('b') b: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const ida = buildIdOf(String(a ?? ''));
    const idb = buildIdOf(String(b ?? ''));
    const bytes = await compareOrBusy(res, () =>
      this.comparer.get('json', ida, idb, async () => {
        const [ba, bb] = await Promise.all([this.queries.getBuild(ida), this.queries.getBuild(idb)]);
        if (!ba || !bb) throw new NotFoundException(`compare: build ${!ba ? a : b} is not stored`);
        return [ba, bb];
      }),
    );
    sendCached(req, res, this.pages, { ...bytes, status: 200, expires: 0 }, JSON_TYPE);
  }

  @Get('api/v1/failures')
  async failures(@Query() query: Record<string, unknown>, @Req() req: Request, @Res() res: Response): Promise<void> {
    const filter = buildFilter(query);
    sendJson(req, res, await this.queries.failures(filter.limit ?? 50, filter.before));
  }

  @Get('api/v1/live')
  liveJobs(@Req() req: Request, @Res() res: Response): void {
    sendJson(req, res, { jobs: this.live.active() });
  }

  @Get('api/v1/pools')
  async pools(@Req() req: Request, @Res() res: Response): Promise<void> {
    this.view(req, res, await this.scheduler.pools());
  }

  @Get('api/v1/workers')
  async workers(@Req() req: Request, @Res() res: Response): Promise<void> {
    this.view(req, res, await this.scheduler.workers());
  }

  @Get('api/v1/queues')
  async queues(@Req() req: Request, @Res() res: Response): Promise<void> {
    this.view(req, res, await this.scheduler.queues());
  }

  @Put('api/v1/builds/:id/tags/:tag')
  @Needs('write')
  @HttpCode(204)
  async tag(@Param('id') raw: string, @Param('tag') tag: string): Promise<void> {
    const id = buildIdOf(raw);
    if (!TAG.test(tag)) throw new BadRequestException(`tag ${JSON.stringify(tag)}: 1-64 letters, digits, '.', '_' or '-'`);
    if (!(await this.queries.getBuild(id))) throw new NotFoundException(`build ${id}: not stored`);
    await exclusiveWrite(this.ds, () =>
      this.ds.transaction(async (em) => {
        await em.createQueryBuilder().insert().into(TagEntity).values({ name: tag }).orIgnore().execute();
        const found = await em.getRepository(TagEntity).findOneOrFail({ where: { name: tag } });
        await em.createQueryBuilder().insert().into(BuildTagEntity).values({ buildId: id, tagId: found.id }).orIgnore().execute();
      }),
    );
    this.pages.clear();
  }

  @Delete('api/v1/builds/:id/tags/:tag')
  @Needs('write')
  @HttpCode(204)
  async untag(@Param('id') raw: string, @Param('tag') tag: string): Promise<void> {
    const id = buildIdOf(raw);
    const found = await this.ds.getRepository(TagEntity).findOne({ where: { name: tag } });
    if (found) await exclusiveWrite(this.ds, () => this.ds.getRepository(BuildTagEntity).delete({ buildId: id, tagId: found.id }));
    this.pages.clear();
  }

  @Post('api/v1/tokens')
  @Needs('admin')
  async issueToken(@Body() body: unknown, @Req() req: Request, @Res() res: Response): Promise<void> {
    // JSON only: an HTML form (the one kind of cross-site post that needs no preflight) cannot send it.
    if (!req.is('application/json')) throw new UnsupportedMediaTypeException('POST /api/v1/tokens: the body must be JSON (Content-Type: application/json)');
    const parsed = TokenRequest.safeParse(body ?? {});
    if (!parsed.success) throw new BadRequestException(parsed.error.issues[0]?.message);
    const { user, role, label, changeRole } = parsed.data;
    let issued;
    try {
      issued = await this.tokens.issue(user, role, label?.slice(0, 100) ?? 'api', { changeRole: changeRole === true });
    } catch (e) {
      if (e instanceof RoleConflictError) throw new ConflictException(e.message);
      throw e;
    }
    sendJson(req, res, { id: issued.id, user, role, token: issued.token }, 201);
  }

  @Delete('api/v1/tokens/:id')
  @Needs('admin')
  @HttpCode(204)
  async revokeToken(@Param('id') raw: string): Promise<void> {
    const id = /^[1-9]\d{0,15}$/.test(raw) ? Number(raw) : undefined;
    if (id === undefined || !(await this.tokens.revoke(id as TokenId))) throw new NotFoundException(`token ${JSON.stringify(raw)}: no such token`);
  }

  private view<T>(req: Request, res: Response, view: View<T>): void {
    if (view.ok) sendJson(req, res, view.value);
    else sendJson(req, res, { statusCode: 503, message: view.error }, 503);
  }
}
