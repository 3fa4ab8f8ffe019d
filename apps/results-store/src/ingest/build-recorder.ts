/**
 * Writes finished builds to the database, one or a batch per transaction: each one's
 * job (created on first sight), build row, steps and artifacts, and the job's
 * latest-build summary. Called only once every blob the row references is committed to the blob
 * store, so the database never names a blob that is not on disk.
 */
import type { BuildResult } from '@cairn/contracts';
import { In, type DataSource, type EntityManager, type EntityTarget, type ObjectLiteral, type QueryDeepPartialEntity } from 'typeorm';
import { ArtifactEntity } from '../db/artifact.entity.js';
import { BuildEntity, type BuildSource } from '../db/build.entity.js';
import { JobEntity } from '../db/job.entity.js';
import { StepEntity } from '../db/step.entity.js';
import { asBuildId, type BuildId, type JobKey, type Sha256 } from '../ids.js';
import { exclusiveWrite } from '../db/exclusive-write.js';
import { RollupBatch } from '../rollups/rollup-metrics.js';

export interface BuildToRecord {
  readonly result: BuildResult;
  readonly source: BuildSource;
  /** Normalised paths, blobs already in the store. */
  readonly artifacts: readonly { path: string; size: number; sha256: Sha256 }[];
  /** `index`: the log's chunk times and step boundaries (log-index.ts); an upload's only when its manifest gave one. */
  readonly log?: { sha256: Sha256; size: number; index?: string };
  readonly note?: string;
  /** The trace ID the result's message carried. */
  readonly trace?: string;
  readonly storedAt: number;
}

export type RecordOutcome = 'stored' | 'duplicate';

/** Rows per INSERT, under SQLite's and PostgreSQL's limits on bound parameters. */
const CHUNK = 400;
/** A build row has ~25 columns. */
const BUILD_ROWS = 100;

export async function buildExists(ds: DataSource, id: BuildId): Promise<boolean> {
  return (await ds.getRepository(BuildEntity).existsBy({ id })) as boolean;
}

/** Which of `ids` are stored already, in one query. */
export async function storedAmong(ds: DataSource, ids: readonly BuildId[]): Promise<Set<BuildId>> {
  if (ids.length === 0) return new Set();
  return new Set((await ds.getRepository(BuildEntity).find({ select: { id: true }, where: { id: In([...ids]) } })).map((b) => b.id));
}

export async function recordBuild(ds: DataSource, build: BuildToRecord): Promise<RecordOutcome> {
  const id = asBuildId(build.result.job);
  try {
    const [outcome] = await exclusiveWrite(ds, () => ds.transaction((em) => writeBuilds(em, [build])));
    return outcome!;
  } catch (e) {
    // Another replica stored the same build between our check and our insert.
    if (await buildExists(ds, id).catch(() => false)) return 'duplicate';
    throw e;
  }
}

/**
 * Several builds in one transaction (one commit, one fsync of the database, for all).
 * When that transaction fails, each build is recorded alone, so one build the database
 * refuses (or one another replica stored meanwhile) fails only itself. The outcomes are
 * in the order of `builds`; a build listed twice is stored once, the second a duplicate.
 */
export async function recordBuilds(ds: DataSource, builds: readonly BuildToRecord[]): Promise<PromiseSettledResult<RecordOutcome>[]> {
  if (builds.length > 1) {
    try {
      const outcomes = await exclusiveWrite(ds, () => ds.transaction((em) => writeBuilds(em, builds)));
      return outcomes.map((value) => ({ status: 'fulfilled', value }));
    } catch {
      // Told apart below, build by build.
    }
  }
  return Promise.allSettled(builds.map((b) => recordBuild(ds, b)));
}

/**
 * The builds' rows in the transaction `em` is in. Exported for the tests: through
 * `recordBuilds` a batch that fails would be hidden by the retry build by build.
 */
export async function writeBuilds(em: EntityManager, builds: readonly BuildToRecord[]): Promise<RecordOutcome[]> {
  const ids = builds.map((b) => asBuildId(b.result.job));
  const present = new Set((await em.getRepository(BuildEntity).find({ select: { id: true }, where: { id: In(ids) } })).map((b) => b.id));
  const outcomes = ids.map((id): RecordOutcome => {
    if (present.has(id)) return 'duplicate';
    present.add(id);
    return 'stored';
  });
  const fresh = builds.filter((_, i) => outcomes[i] === 'stored');
  const firstSeen = new Map<string, number>();
  for (const b of fresh) if (!firstSeen.has(b.result.name)) firstSeen.set(b.result.name, b.storedAt);
  const jobs = await jobKeys(em, firstSeen);
  await insertChunked(
    em,
    BuildEntity,
    fresh.map((b) => buildRow(asBuildId(b.result.job), jobs.get(b.result.name)!, b)),
    BUILD_ROWS,
  );
  await insertChunked(
    em,
    StepEntity,
    fresh.flatMap((b) =>
      b.result.steps.map((s, position) => ({
        buildId: asBuildId(b.result.job),
        position,
        stage: s.stage,
        op: s.op,
        stepId: s.id,
        cached: s.cached,
        ms: Math.round(s.ms),
      })),
    ),
    CHUNK,
  );
  await insertChunked(
    em,
    ArtifactEntity,
    fresh.flatMap((b) => b.artifacts.map((a) => ({ buildId: asBuildId(b.result.job), path: a.path, size: a.size, sha256: a.sha256 }))),
    CHUNK,
  );
  // Results can arrive out of order; the job shows its most recently finished build (of
  // those finished at the same time, the last recorded, as if recorded one by one).
  const latest = new Map<string, BuildToRecord>();
  for (const b of fresh) if ((latest.get(b.result.name)?.result.finishedAt ?? -Infinity) <= b.result.finishedAt) latest.set(b.result.name, b);
  await updateLatest(
    em,
    [...latest].map(([name, b]) => [jobs.get(name)!, asBuildId(b.result.job), b.result.state, b.result.finishedAt, b.result.pool]),
  );
  // The charts' figures, in the same transaction: a build is counted once, when it is stored.
  const rollups = new RollupBatch();
  for (const b of fresh) rollups.addBuild(b.result);
  await rollups.write(em);
  return outcomes;
}

/**
 * Each job's latest build, unless it has a later one already: one UPDATE for many jobs
 * (each job once), `[job, build, state, finishedAt, pool]` each.
 */
async function updateLatest(em: EntityManager, rows: readonly (readonly [JobKey, BuildId, string, number, string])[]): Promise<void> {
  const postgres = em.connection.options.type === 'postgres';
  const types = ['integer', 'varchar', 'varchar', 'bigint', 'varchar'];
  for (let i = 0; i < rows.length; i += BUILD_ROWS) {
    const params: unknown[] = [];
    const values = rows
      .slice(i, i + BUILD_ROWS)
      .map((row) => {
        const at = params.length;
        params.push(...row);
        return `(${row.map((_, k) => (postgres ? `$${at + k + 1}::${types[k]}` : '?')).join(', ')})`;
      })
      .join(', ');
    await em.query(
      `UPDATE jobs SET last_build_id = v.build, last_state = v.state, last_finished_at = v.finished, last_pool = v.pool
       FROM (SELECT column1 AS id, column2 AS build, column3 AS state, column4 AS finished, column5 AS pool FROM (VALUES ${values}) AS t) AS v
       WHERE jobs.id = v.id AND (jobs.last_finished_at IS NULL OR jobs.last_finished_at <= v.finished)`,
      params,
    );
  }
}

async function insertChunked<T extends ObjectLiteral>(
  em: EntityManager,
  entity: EntityTarget<T>,
  rows: QueryDeepPartialEntity<T>[],
  chunk: number,
): Promise<void> {
  for (let i = 0; i < rows.length; i += chunk) await em.insert(entity, rows.slice(i, i + chunk));
}

/**
 * The keys of the jobs named, each created on first sight (`createdAt`: when its first
 * build was stored): one query for those that exist, one insert and one query for the
 * rest, however many builds the batch has.
 */
async function jobKeys(em: EntityManager, createdAt: ReadonlyMap<string, number>): Promise<Map<string, JobKey>> {
  const keys = new Map<string, JobKey>();
  const find = async (names: string[]) => {
    for (let i = 0; i < names.length; i += CHUNK)
      for (const job of await em.getRepository(JobEntity).find({ where: { name: In(names.slice(i, i + CHUNK)) }, select: { id: true, name: true } }))
        keys.set(job.name, job.id);
  };
  await find([...createdAt.keys()]);
  const missing = [...createdAt.keys()].filter((name) => !keys.has(name));
  if (missing.length === 0) return keys;
  for (let i = 0; i < missing.length; i += CHUNK)
    await em
      .createQueryBuilder()
      .insert()
      .into(JobEntity)
      .values(missing.slice(i, i + CHUNK).map((name) => ({ name, createdAt: createdAt.get(name)! })))
      .orIgnore()
      .execute();
  await find(missing);
  for (const name of missing) if (!keys.has(name)) throw new Error(`job ${JSON.stringify(name)} was neither found nor created`);
  return keys;
}

function buildRow(id: BuildId, jobId: JobKey, build: BuildToRecord): Partial<BuildEntity> {
  const r = build.result;
  return {
    id,
    jobId,
    pool: r.pool,
    platform: r.platform,
    worker: r.worker,
    client: r.client,
    spec: r.spec,
    contextDigest: r.contextDigest ?? null,
    cacheHint: r.cacheHint,
    state: r.state,
    failure: r.failure ?? null,
    snapshotId: r.snapshotId ?? null,
    attempts: r.attempts,
    submittedAt: r.submittedAt,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    durationMs: Math.max(0, r.finishedAt - r.startedAt),
    stepsTotal: r.steps.length,
    stepsCached: r.steps.filter((s) => s.cached).length,
    logSha256: build.log?.sha256 ?? null,
    logBytes: build.log?.size ?? null,
    logIndex: build.log?.index ?? null,
    source: build.source,
    storedAt: build.storedAt,
    note: build.note ?? null,
    trace: build.trace ?? null,
  };
}
