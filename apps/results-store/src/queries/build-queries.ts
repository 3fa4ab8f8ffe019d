/**
 * What the pages and the JSON API read. Lists are paged by keyset (finish time, then
 * ID) rather than by offset and never count the whole table, so a page costs the same
 * with a hundred builds or a hundred thousand.
 */
import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { ArtifactEntity } from '../db/artifact.entity.js';
import type { BuildState } from '../db/build.entity.js';
import { JobEntity } from '../db/job.entity.js';
import type { BuildId, JobKey, Sha256 } from '../ids.js';
import { DATA_SOURCE } from '../tokens.js';

export const STATES: readonly BuildState[] = ['succeeded', 'failed', 'cancelled'];

export interface BuildFilter {
  readonly pool?: string;
  readonly platform?: string;
  readonly state?: BuildState;
  readonly client?: string;
  /** Part of a job name, or a whole build ID. */
  readonly q?: string;
  readonly job?: string;
  readonly tag?: string;
  /** Cursor from a previous page (`next`): the page after it in the order. */
  readonly before?: string;
  /** Cursor from a previous page (`prev`): the page before it in the order (newer builds). */
  readonly after?: string;
  /** The order; by finish time, newest first, when absent. */
  readonly sort?: BuildSort;
  /** Finished at or after this time (epoch ms). */
  readonly from?: number;
  /** Finished before this time (epoch ms). */
  readonly to?: number;
  readonly limit?: number;
}

export const SORTS = ['finished', 'started', 'duration', 'name'] as const;
export type BuildSort = (typeof SORTS)[number];

/** Each order of the build list: its column, and whether it runs down (newest, longest first) or up (names A to Z). */
const ORDERS: Record<BuildSort, { column: string; down: boolean; key: (b: BuildSummary) => string | number }> = {
  finished: { column: 'b.finished_at', down: true, key: (b) => b.finishedAt },
  started: { column: 'b.started_at', down: true, key: (b) => b.startedAt },
  duration: { column: 'b.duration_ms', down: true, key: (b) => b.durationMs },
  name: { column: 'j.name', down: false, key: (b) => encodeURIComponent(b.job) },
};

/** A cursor of the build list in `sort` order: `<key>.<build ID>` (the key URI-encoded for names). */
export function parseListCursor(sort: BuildSort, cursor: string): { key: string | number; id: string } | undefined {
  const m = /^(.{1,400})\.(j-[0-9a-z]{8,40})$/.exec(cursor);
  if (!m) return undefined;
  if (sort !== 'name') return /^\d{1,16}$/.test(m[1]!) ? { key: Number(m[1]), id: m[2]! } : undefined;
  try {
    return { key: decodeURIComponent(m[1]!), id: m[2]! };
  } catch {
    return undefined;
  }
}

export interface BuildSummary {
  readonly id: BuildId;
  readonly job: string;
  readonly pool: string;
  readonly platform: string;
  readonly client: string;
  readonly worker: string;
  readonly state: BuildState;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly durationMs: number;
  readonly stepsTotal: number;
  readonly stepsCached: number;
  readonly failure: string | null;
}

export interface Page<T> {
  readonly items: T[];
  /** Pass as `before` for the next page; absent on the last page. */
  readonly next?: string;
  /** Pass as `after` for the page before (build lists); absent on the first page. */
  readonly prev?: string;
}

export interface BuildDetail extends BuildSummary {
  readonly spec: string;
  readonly contextDigest: string | null;
  readonly cacheHint: string;
  readonly snapshotId: string | null;
  readonly attempts: number;
  readonly submittedAt: number;
  readonly storedAt: number;
  readonly source: string;
  readonly note: string | null;
  readonly logSha256: Sha256 | null;
  readonly logBytes: number | null;
  /** The stored log's times and steps, encoded (log-index.ts). */
  readonly logIndex: string | null;
  /** The trace ID of the request that submitted it (contracts' trace.ts), when known. */
  readonly trace: string | null;
  readonly steps: { position: number; stage: string; op: string; stepId: string; cached: boolean; ms: number }[];
  readonly artifacts: { path: string; size: number; sha256: Sha256 }[];
  readonly tags: string[];
}

/** A stored build and the build before it of the same job: everything its page is rendered from. */
export interface PageSource {
  readonly build: BuildDetail;
  readonly previous: BuildId | undefined;
}

export interface JobSummary {
  readonly name: string;
  readonly lastBuild: BuildId | null;
  readonly lastState: BuildState | null;
  readonly lastFinishedAt: number | null;
  readonly lastPool: string | null;
}

const MAX_LIMIT = 200;
/** Totals of the build list are counted again after this long (a count of 100,000 builds is not free). */
const COUNT_TTL_MS = 5000;
const MAX_COUNTS = 500;
// SQLite has no default escape character for LIKE; PostgreSQL's is this same one.
// On PostgreSQL the trigram index jobs_name_trgm (migration 0002) is on exactly `LOWER(name)`.
export const LIKE_NAME = `LOWER(j.name) LIKE :q ESCAPE '\\'`;
const FACETS_TTL_MS = 30_000;
const FACET_LIMIT = 200;
const SUMMARY_COLUMNS = [
  'b.id AS id',
  'j.name AS job',
  'b.pool AS pool',
  'b.platform AS platform',
  'b.client AS client',
  'b.worker AS worker',
  'b.state AS state',
  'b.started_at AS started_at',
  'b.finished_at AS finished_at',
  'b.duration_ms AS duration_ms',
  'b.steps_total AS steps_total',
  'b.steps_cached AS steps_cached',
  'SUBSTR(b.failure, 1, 300) AS failure',
];

// The same "previous build" everywhere a page is rendered or checked: the job's build
// just before this one in (finish time, ID) order.
const PREVIOUS =
  'SELECT p.id FROM builds p WHERE p.job_id = b.job_id AND (p.finished_at, p.id) < (b.finished_at, b.id) ORDER BY p.finished_at DESC, p.id DESC LIMIT 1';

/**
 * What a build's page shows besides its row, as JSON arrays computed in the same query:
 * one round trip for a page where there were five. On PostgreSQL each query cost the
 * event loop ~0.1 ms in its socket write alone, the largest part of a first view's CPU
 * after the page itself.
 */
function jsonColumns(postgres: boolean): { steps: string; artifacts: string; tags: string } {
  const object = (fields: Record<string, string>) =>
    `${postgres ? 'json_build_object' : 'json_object'}(${Object.entries(fields)
      .map(([k, v]) => `'${k}', ${v}`)
      .join(', ')})`;
  const array = (value: string, order: string, from: string) => `(SELECT ${postgres ? 'json_agg' : 'json_group_array'}(${value} ORDER BY ${order}) ${from})`;
  return {
    steps: array(
      object({ position: 's.position', stage: 's.stage', op: 's.op', step_id: 's.step_id', cached: 's.cached', ms: 's.ms' }),
      's.position',
      'FROM steps s WHERE s.build_id = b.id',
    ),
    artifacts: array(object({ path: 'a.path', size: 'a.size', sha256: 'a.sha256' }), 'a.path', 'FROM artifacts a WHERE a.build_id = b.id'),
    tags: array('t.name', 't.name', 'FROM build_tags bt JOIN tags t ON t.id = bt.tag_id WHERE bt.build_id = b.id'),
  };
}

/** The queries behind a build's page, in each database's JSON dialect. */
function pageQueries(postgres: boolean): { source: string; facts: string } {
  const json = jsonColumns(postgres);
  return {
    // Everything the page is rendered from.
    source: `SELECT b.*, j.name AS job, (${PREVIOUS}) AS previous, ${json.steps} AS steps_json, ${json.artifacts} AS artifacts_json, ${json.tags} AS tags_json FROM builds b LEFT JOIN jobs j ON j.id = b.job_id`,
    // What a saved copy's stamp is checked against.
    facts: `SELECT b.stored_at AS stored_at, (${PREVIOUS}) AS previous, ${json.tags} AS tags_json FROM builds b`,
  };
}
const PAGE_QUERIES = { postgres: pageQueries(true), sqlite: pageQueries(false) };

type Raw = Record<string, unknown>;
const num = (v: unknown): number => Number(v);

function summary(row: Raw): BuildSummary {
  return {
    id: row.id as BuildId,
    job: row.job as string,
    pool: row.pool as string,
    platform: row.platform as string,
    client: row.client as string,
    worker: row.worker as string,
    state: row.state as BuildState,
    startedAt: num(row.started_at),
    finishedAt: num(row.finished_at),
    durationMs: num(row.duration_ms),
    stepsTotal: num(row.steps_total),
    stepsCached: num(row.steps_cached),
    failure: (row.failure as string | null) ?? null,
  };
}

/** A position in (finish time, ID) order: list pages and the page backfill go down it. */
export interface Cursor {
  readonly at: number;
  readonly id: string;
}

/** A JSON array column: parsed by the PostgreSQL driver, text from SQLite, null when empty. */
function jsonArray<T>(value: unknown): T[] {
  if (value === null || value === undefined) return [];
  return (typeof value === 'string' ? JSON.parse(value) : value) as T[];
}

function pageSource(row: Raw): PageSource {
  const nullable = (v: unknown) => (v === null || v === undefined ? null : num(v));
  const build: BuildDetail = {
    ...summary(row),
    job: (row.job as string | null) ?? '?',
    spec: row.spec as string,
    contextDigest: (row.context_digest as string | null) ?? null,
    cacheHint: row.cache_hint as string,
    snapshotId: (row.snapshot_id as string | null) ?? null,
    attempts: num(row.attempts),
    submittedAt: num(row.submitted_at),
    storedAt: num(row.stored_at),
    source: row.source as string,
    note: (row.note as string | null) ?? null,
    logSha256: (row.log_sha256 as Sha256 | null) ?? null,
    logBytes: nullable(row.log_bytes),
    logIndex: (row.log_index as string | null) ?? null,
    trace: (row.trace as string | null) ?? null,
    steps: jsonArray<Raw>(row.steps_json).map((s) => ({
      position: num(s.position),
      stage: s.stage as string,
      op: s.op as string,
      stepId: s.step_id as string,
      cached: Boolean(s.cached),
      ms: num(s.ms),
    })),
    artifacts: jsonArray<Raw>(row.artifacts_json).map((a) => ({ path: a.path as string, size: num(a.size), sha256: a.sha256 as Sha256 })),
    tags: jsonArray<string>(row.tags_json),
  };
  return { build, previous: (row.previous as BuildId | null) ?? undefined };
}

export function parseCursor(before: string | undefined): Cursor | undefined {
  const m = before === undefined ? null : /^(\d{1,16})\.(j-[0-9a-z]{8,40})$/.exec(before);
  return m ? { at: Number(m[1]), id: m[2]! } : undefined;
}

export interface Facets {
  readonly pools: string[];
  readonly platforms: string[];
  readonly clients: string[];
}

@Injectable()
export class BuildQueries {
  private facetsCache: { at: number; value: Promise<Facets> } | undefined;
  private readonly counts = new Map<string, { at: number; value: Promise<number> }>();

  constructor(@Inject(DATA_SOURCE) private readonly ds: DataSource) {}

  async listBuilds(filter: BuildFilter): Promise<Page<BuildSummary>> {
    const limit = Math.min(MAX_LIMIT, Math.max(1, filter.limit ?? 50));
    const sql = new Sql(this.ds);
    const where = await this.buildConditions(filter, sql);
    if (where === undefined) return { items: [] };
    const order = ORDERS[filter.sort ?? 'finished'];
    // Going back (newer builds) reads the order the other way from the cursor, then turns the page round.
    const back = filter.after !== undefined;
    const given = filter.after ?? filter.before;
    const cursor = given === undefined ? undefined : parseListCursor(filter.sort ?? 'finished', given);
    const down = order.down !== back;
    if (cursor) {
      // A row value, not `a < x OR (a = x AND b < y)`: SQLite turns that OR into a scan of half the table.
      where.push(`(${order.column}, b.id) ${down ? '<' : '>'} (${sql.p(cursor.key)}, ${sql.p(cursor.id)})`);
    }
    // A left join (every build has its job) keeps builds the outer table: SQLite would
    // otherwise be free to start from the smaller jobs table and sort every build.
    const direction = down ? 'DESC' : 'ASC';
    const text =
      `SELECT ${SUMMARY_COLUMNS.join(', ')} FROM builds b LEFT JOIN jobs j ON j.id = b.job_id` +
      (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
      ` ORDER BY ${order.column} ${direction}, b.id ${direction} LIMIT ${limit + 1}`;
    const rows = ((await this.ds.query(text, sql.params)) as Raw[]).map(summary);
    const more = rows.length > limit;
    const items = rows.slice(0, limit);
    if (back) items.reverse();
    const at = (b: BuildSummary | undefined) => (b ? `${order.key(b)}.${b.id}` : undefined);
    const [first, last] = [items[0], items[items.length - 1]];
    const next = back ? at(last) : more ? at(last) : undefined;
    const prev = back ? (more ? at(first) : undefined) : cursor ? at(first) : undefined;
    return { items, ...(next ? { next } : {}), ...(prev ? { prev } : {}) };
  }

  /** The SQL conditions of `filter` (its cursor aside); undefined when nothing can match. */
  private async buildConditions(filter: BuildFilter, sql: Sql): Promise<string[] | undefined> {
    const where: string[] = [];
    if (filter.from !== undefined) where.push(`b.finished_at >= ${sql.p(filter.from)}`);
    if (filter.to !== undefined) where.push(`b.finished_at < ${sql.p(filter.to)}`);
    if (filter.pool) where.push(`b.pool = ${sql.p(filter.pool)}`);
    if (filter.platform) where.push(`b.platform = ${sql.p(filter.platform)}`);
    if (filter.state) where.push(`b.state = ${sql.p(filter.state)}`);
    if (filter.client) where.push(`b.client = ${sql.p(filter.client)}`);
    // By key, so that the (job, finish time) index serves the query rather than a scan of every build.
    if (filter.job !== undefined) where.push(`b.job_id = (SELECT id FROM jobs WHERE name = ${sql.p(filter.job)})`);
    if (filter.tag) where.push(`b.id IN (SELECT bt.build_id FROM build_tags bt JOIN tags t ON t.id = bt.tag_id WHERE t.name = ${sql.p(filter.tag)})`);
    if (filter.q) {
      const q = filter.q.trim();
      const keys = await this.jobKeysMatching(q);
      const inKeys = keys.length ? `b.job_id IN (${keys.map((k) => sql.p(k)).join(', ')})` : undefined;
      if (/^j-[0-9a-z]{8,40}$/.test(q)) where.push(inKeys ? `(b.id = ${sql.p(q)} OR ${inKeys})` : `b.id = ${sql.p(q)}`);
      else if (inKeys) where.push(inKeys);
      else return undefined;
    }
    return where;
  }

  /** How many builds match `filter` (its cursor aside); counted again at most every few seconds. */
  async countMatching(filter: BuildFilter): Promise<number> {
    const sql = new Sql(this.ds);
    const where = await this.buildConditions(filter, sql);
    if (where === undefined) return 0;
    const text = `SELECT COUNT(*) AS n FROM builds b${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`;
    const key = `${text}\0${JSON.stringify(sql.params)}`;
    const cached = this.counts.get(key);
    if (cached && Date.now() - cached.at < COUNT_TTL_MS) return cached.value;
    const value = this.ds.query(text, sql.params).then((rows: Raw[]) => num(rows[0]?.n));
    if (this.counts.size >= MAX_COUNTS) this.counts.clear();
    this.counts.set(key, { at: Date.now(), value });
    value.catch(() => this.counts.delete(key));
    return value;
  }

  async failures(limit = 50, before?: string): Promise<Page<BuildSummary>> {
    return this.listBuilds({ state: 'failed', limit, ...(before ? { before } : {}) });
  }

  async getBuild(id: BuildId): Promise<BuildDetail | undefined> {
    return (await this.pageSource(id))?.build;
  }

  /** A build with what its page shows, in one query (see `jsonColumns`). */
  async pageSource(id: BuildId): Promise<PageSource | undefined> {
    const sql = new Sql(this.ds);
    const rows = (await this.ds.query(`${this.pageQueries.source} WHERE b.id = ${sql.p(id)}`, sql.params)) as Raw[];
    return rows[0] && pageSource(rows[0]);
  }

  /**
   * Up to `limit` builds that finished before `older` (all when absent), newest first,
   * with what their pages show, in one query: for the page backfill.
   */
  async pageSources(older: Cursor | undefined, limit: number): Promise<PageSource[]> {
    const sql = new Sql(this.ds);
    const where = older ? ` WHERE (b.finished_at, b.id) < (${sql.p(older.at)}, ${sql.p(older.id)})` : '';
    const rows = (await this.ds.query(
      `${this.pageQueries.source}${where} ORDER BY b.finished_at DESC, b.id DESC LIMIT ${Math.max(1, Math.floor(limit))}`,
      sql.params,
    )) as Raw[];
    return rows.map(pageSource);
  }

  private get pageQueries(): { source: string; facts: string } {
    return this.ds.options.type === 'postgres' ? PAGE_QUERIES.postgres : PAGE_QUERIES.sqlite;
  }

  /** How many builds finished before `older` (all when absent): what the page backfill has left. */
  async countBuilds(older?: Cursor): Promise<number> {
    const sql = new Sql(this.ds);
    const where = older ? ` WHERE (finished_at, id) < (${sql.p(older.at)}, ${sql.p(older.id)})` : '';
    const [row] = (await this.ds.query(`SELECT COUNT(*) AS n FROM builds${where}`, sql.params)) as Raw[];
    return num(row?.n ?? 0);
  }

  /**
   * What a stored build's page depends on besides the build itself: enough to tell
   * whether a pre-rendered copy is current, in one small indexed read.
   */
  async pageFacts(id: BuildId): Promise<{ storedAt: number; previous: BuildId | undefined; tags: string[] } | undefined> {
    const sql = new Sql(this.ds);
    const [row] = (await this.ds.query(`${this.pageQueries.facts} WHERE b.id = ${sql.p(id)}`, sql.params)) as Raw[];
    if (!row) return undefined;
    return { storedAt: num(row.stored_at), previous: (row.previous as BuildId | null) ?? undefined, tags: jsonArray<string>(row.tags_json) };
  }

  async artifact(id: BuildId, path: string): Promise<{ path: string; size: number; sha256: Sha256 } | undefined> {
    const found = await this.ds.getRepository(ArtifactEntity).findOne({ where: { buildId: id, path } });
    return found ? { path: found.path, size: found.size, sha256: found.sha256 } : undefined;
  }

  async listJobs(options: { q?: string; state?: BuildState; after?: string; limit?: number }): Promise<Page<JobSummary>> {
    const limit = Math.min(MAX_LIMIT, Math.max(1, options.limit ?? 100));
    const qb = this.ds
      .createQueryBuilder()
      .select([
        'j.name AS name',
        'j.last_build_id AS last_build',
        'j.last_state AS last_state',
        'j.last_finished_at AS last_finished_at',
        'j.last_pool AS last_pool',
      ])
      .from(JobEntity, 'j');
    if (options.q) qb.andWhere(LIKE_NAME, { q: likePattern(options.q) });
    if (options.state) qb.andWhere('j.last_state = :state', { state: options.state });
    if (options.after) qb.andWhere('j.name > :after', { after: options.after });
    qb.orderBy('j.name', 'ASC').limit(limit + 1);
    const rows = (await qb.getRawMany<Raw>()).map((r): JobSummary => ({
      name: r.name as string,
      lastBuild: (r.last_build as BuildId | null) ?? null,
      lastState: (r.last_state as BuildState | null) ?? null,
      lastFinishedAt: r.last_finished_at === null || r.last_finished_at === undefined ? null : num(r.last_finished_at),
      lastPool: (r.last_pool as string | null) ?? null,
    }));
    return paged(rows, limit, (j) => j.name);
  }

  async job(name: string): Promise<JobSummary | undefined> {
    const j = await this.ds.getRepository(JobEntity).findOne({ where: { name } });
    return j
      ? { name: j.name, lastBuild: j.lastBuildId, lastState: j.lastState as BuildState | null, lastFinishedAt: j.lastFinishedAt, lastPool: j.lastPool }
      : undefined;
  }

  /** The most recent builds of a job, newest first, for its history chart. */
  async history(name: string, limit = 100): Promise<BuildSummary[]> {
    return (await this.listBuilds({ job: name, limit })).items;
  }

  /** Distinct values for the filter menus (cheap: they come from small indexed scans). */
  async facets(): Promise<Facets> {
    if (this.facetsCache && Date.now() - this.facetsCache.at < FACETS_TTL_MS) return this.facetsCache.value;
    const value = this.readFacets();
    this.facetsCache = { at: Date.now(), value };
    value.catch(() => (this.facetsCache = undefined));
    return value;
  }

  private async readFacets(): Promise<Facets> {
    // One index probe per distinct value ("loose index scan"): PostgreSQL has no skip
    // scan, and its plain `SELECT DISTINCT` read all 100,000 builds (25-30 ms per column,
    // three at once every 30 s, holding up the list page being rendered). SQLite skips on its own.
    const distinct = async (column: string) =>
      (
        (await this.ds.query(
          `WITH RECURSIVE d(v) AS (SELECT MIN(${column}) FROM builds UNION ALL SELECT (SELECT MIN(n.${column}) FROM builds n WHERE n.${column} > d.v) FROM d WHERE d.v IS NOT NULL) ` +
            `SELECT v FROM d WHERE v IS NOT NULL LIMIT ${FACET_LIMIT}`,
        )) as { v: string }[]
      ).map((r) => r.v);
    const [pools, platforms, clients] = await Promise.all([distinct('pool'), distinct('platform'), distinct('client')]);
    return { pools, platforms, clients };
  }

  private async jobKeysMatching(q: string): Promise<JobKey[]> {
    const rows = await this.ds
      .createQueryBuilder()
      .select('j.id', 'id')
      .from(JobEntity, 'j')
      .where(LIKE_NAME, { q: likePattern(q) })
      .limit(1000)
      .getRawMany<{ id: number }>();
    return rows.map((r) => Number(r.id) as JobKey);
  }
}

/**
 * Parameters for hand-written SQL on the hot read paths (TypeORM's query builder costs
 * more than the queries themselves there): `$1, $2...` for PostgreSQL, `?` for SQLite.
 */
class Sql {
  readonly params: unknown[] = [];
  private readonly numbered: boolean;

  constructor(ds: DataSource) {
    this.numbered = ds.options.type === 'postgres';
  }

  p(value: unknown): string {
    this.params.push(value);
    return this.numbered ? `$${this.params.length}` : '?';
  }
}

function paged<T>(rows: T[], limit: number, cursor: (last: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows };
  const items = rows.slice(0, limit);
  return { items, next: cursor(items[items.length - 1]!) };
}

/** `LIKE` pattern for a case-insensitive substring, with the user's `%`, `_` and `\` taken literally. */
function likePattern(q: string): string {
  return `%${q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
