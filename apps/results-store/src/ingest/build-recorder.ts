/**
 * Writes one finished build to the database in one transaction: its job (created on
 * first sight), the build row, its steps and its artifacts, and the job's latest-build
 * summary. Called only once every blob the row references is committed to the blob
 * store, so the database never names a blob that is not on disk.
 */
import type { BuildResult } from '@cairn/contracts';
import type { DataSource, EntityManager } from 'typeorm';
import { ArtifactEntity } from '../db/artifact.entity.js';
import { BuildEntity, type BuildSource } from '../db/build.entity.js';
import { JobEntity } from '../db/job.entity.js';
import { StepEntity } from '../db/step.entity.js';
import { asBuildId, type BuildId, type JobKey, type Sha256 } from '../ids.js';

export interface BuildToRecord {
  readonly result: BuildResult;
  readonly source: BuildSource;
  /** Normalised paths, blobs already in the store. */
  readonly artifacts: readonly { path: string; size: number; sha256: Sha256 }[];
  readonly log?: { sha256: Sha256; size: number };
  readonly note?: string;
  readonly storedAt: number;
}

export type RecordOutcome = 'stored' | 'duplicate';

const CHUNK = 400;

export async function buildExists(ds: DataSource, id: BuildId): Promise<boolean> {
  return (await ds.getRepository(BuildEntity).existsBy({ id })) as boolean;
}

const writeQueues = new WeakMap<DataSource, Promise<unknown>>();

/**
 * Runs a write transaction alone when the database is SQLite: it has one connection,
 * on which two interleaved transactions would collide. PostgreSQL runs them side by side.
 */
export function exclusiveWrite<T>(ds: DataSource, work: () => Promise<T>): Promise<T> {
  if (ds.options.type !== 'better-sqlite3') return work();
  const run = (writeQueues.get(ds) ?? Promise.resolve()).then(work, work);
  writeQueues.set(ds, run.catch(() => undefined));
  return run;
}

export async function recordBuild(ds: DataSource, build: BuildToRecord): Promise<RecordOutcome> {
  const id = asBuildId(build.result.job);
  try {
    return await exclusiveWrite(ds, () => ds.transaction(async (em) => {
      if (await em.getRepository(BuildEntity).existsBy({ id })) return 'duplicate';
      const jobId = await jobKey(em, build.result.name, build.storedAt);
      await em.insert(BuildEntity, buildRow(id, jobId, build));
      const steps = build.result.steps.map((s, position) => ({ buildId: id, position, stage: s.stage, op: s.op, stepId: s.id, cached: s.cached, ms: Math.round(s.ms) }));
      for (let i = 0; i < steps.length; i += CHUNK) await em.insert(StepEntity, steps.slice(i, i + CHUNK));
      const artifacts = build.artifacts.map((a) => ({ buildId: id, path: a.path, size: a.size, sha256: a.sha256 }));
      for (let i = 0; i < artifacts.length; i += CHUNK) await em.insert(ArtifactEntity, artifacts.slice(i, i + CHUNK));
      // Results can arrive out of order; the job shows its most recently finished build.
      await em
        .createQueryBuilder()
        .update(JobEntity)
        .set({ lastBuildId: id, lastState: build.result.state, lastFinishedAt: build.result.finishedAt, lastPool: build.result.pool })
        .where('id = :jobId AND (last_finished_at IS NULL OR last_finished_at <= :finished)', { jobId, finished: build.result.finishedAt })
        .execute();
      return 'stored' as const;
    }));
  } catch (e) {
    // Another replica stored the same build between our check and our insert.
    if (await buildExists(ds, id).catch(() => false)) return 'duplicate';
    throw e;
  }
}

async function jobKey(em: EntityManager, name: string, now: number): Promise<JobKey> {
  const found = await em.getRepository(JobEntity).findOne({ where: { name }, select: { id: true } });
  if (found) return found.id;
  await em.createQueryBuilder().insert().into(JobEntity).values({ name, createdAt: now }).orIgnore().execute();
  const created = await em.getRepository(JobEntity).findOneOrFail({ where: { name }, select: { id: true } });
  return created.id;
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
    source: build.source,
    storedAt: build.storedAt,
    note: build.note ?? null,
  };
}
