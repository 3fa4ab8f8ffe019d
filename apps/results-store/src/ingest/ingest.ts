/**
 * Storing a finished build, whichever way it arrives (the cluster's results stream or
 * an upload). The order is what keeps the store consistent across crashes:
 *
 *   1. every blob (artifacts, the archived log) is committed to the blob store;
 *   2. then the database row is committed, in one transaction;
 *   3. only then is the result acknowledged (the stream message acked, the upload
 *      answered 201), and the upload hooks run.
 *
 * A crash before 2 leaves orphan blobs (reported by `verify`, removed by retention) and
 * an unacknowledged result, which is delivered again; never a row naming a missing blob.
 */
import { createHash } from 'node:crypto';
import { parseMessage, type Artifact, type BuildResult } from '@cairn/contracts';
import { Inject, Injectable, type LoggerService } from '@nestjs/common';
import { BUS } from '@cairn/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import type { DataSource } from 'typeorm';
import { BlobMismatchError, BlobStore, type StagedBlob } from '../blobs/blob-store.js';
import type { ResultsConfig } from '../config.js';
import type { BuildSource } from '../db/build.entity.js';
import { UploadHooks } from '../hooks/upload-hooks.js';
import { asBuildId, asSha256, type BuildId, type Sha256 } from '../ids.js';
import { readStoredLog } from '../live/log-stream.js';
import { decodeLogIndex } from '../log-index.js';
import { ResultsMetrics } from '../ops/results-metrics.js';
import { CONFIG, DATA_SOURCE, LOGGER } from '../tokens.js';
import { normaliseArtifactPath } from './artifact-path.js';
import { ArtifactSource } from './artifact-source.js';
import { buildExists, recordBuild, recordBuilds, storedAmong, type BuildToRecord, type RecordOutcome } from './build-recorder.js';
import { ByteReader, FramingError, TruncatedError } from './byte-reader.js';
import { MAX_MANIFEST_BYTES, UploadManifest } from './upload-format.js';

/** A result that cannot be stored now but may be later (an artifact not yet in the object store, the database down). */
export class RetryLaterError extends Error {
  override readonly name = 'RetryLaterError';
}

/** An upload refused; nothing of it was kept. `status` is the HTTP status to answer with. */
export class UploadRejectedError extends Error {
  override readonly name = 'UploadRejectedError';
  constructor(
    readonly status: 400 | 409 | 413 | 422,
    message: string,
  ) {
    super(message);
  }
}

/** Told of every newly stored build (what shows builds follows: pages, the live board). */
export interface StoredListener {
  stored(build: BuildId): void;
}

/** The injection token of the StoredListener. */
export const STORED_LISTENER = Symbol('STORED_LISTENER');

/** One result as the stream delivered it. */
export interface ClusterDelivery {
  readonly result: BuildResult;
  /** The stream will not deliver this result again: store what can be stored, noting what could not. */
  readonly lastAttempt: boolean;
  /** The trace ID in the message's `Cairn-Trace` header, if it had one. */
  readonly trace?: string;
}

type NormalisedArtifact = { path: string; size: number; sha256: Sha256 };

@Injectable()
export class Ingest {
  private artifacts: ArtifactSource | undefined;
  private readonly publicUrl: string | undefined;

  constructor(
    @Inject(DATA_SOURCE) private readonly ds: DataSource,
    @Inject(BlobStore) private readonly blobs: BlobStore,
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(ResultsMetrics) private readonly metrics: ResultsMetrics,
    @Inject(UploadHooks) private readonly hooks: UploadHooks,
    @Inject(LOGGER) private readonly logger: Pick<LoggerService, 'log' | 'warn' | 'error'>,
    @Inject(STORED_LISTENER) private readonly listener: StoredListener,
    @Inject(CONFIG) settings: Pick<ResultsConfig, 'publicUrl'>,
  ) {
    this.publicUrl = settings.publicUrl;
  }

  /**
   * Results from the CAIRN_RESULTS stream, stored together: their artifacts are copied
   * from the object store side by side (at most COPIES_AT_ONCE at a time), the small ones
   * and the logs committed to the blob store as one group (made durable together), the
   * large ones each as soon as copied, then the rows of all in one transaction. Each
   * result succeeds or fails on its own: an artifact that cannot be copied fails only its
   * result, whose blobs already committed stay as orphans the next delivery reuses.
   * `working` is called as the work goes on, so the stream does not redeliver meanwhile.
   */
  async fromClusterBatch(deliveries: readonly ClusterDelivery[], working: () => void = () => undefined): Promise<PromiseSettledResult<RecordOutcome>[]> {
    const stored = await storedAmong(
      this.ds,
      deliveries.map((d) => asBuildId(d.result.job)),
    );
    const plans = deliveries.map((d): ClusterPlan => {
      const notes: string[] = [];
      const artifacts = stored.has(asBuildId(d.result.job)) ? [] : this.normalise(d.result.artifacts, 'cluster', notes);
      return { ...d, artifacts, notes, skipped: new Map(), logNotes: [], kept: [] };
    });
    const copying = plans.filter((p) => !stored.has(asBuildId(p.result.job)));

    const grouped: StagedBlob[] = [];
    const small: (() => Promise<void>)[] = [];
    const large: (() => Promise<void>)[] = [];
    for (const plan of copying) {
      for (const artifact of plan.artifacts) {
        if (artifact.size <= GROUPED_MAX_BYTES) small.push(() => this.copyArtifact(plan, artifact, grouped));
        else large.push(() => this.copyArtifact(plan, artifact, undefined));
      }
      small.push(() => this.archiveClusterLog(plan, grouped));
    }
    working();
    await inOrder(small, COPIES_AT_ONCE, (task) => task());
    try {
      await this.blobs.commitAll(grouped);
    } catch (e) {
      for (const plan of copying) plan.failure ??= new RetryLaterError(`committing blobs to the blob store: ${message(e)}`, { cause: e });
    }
    working();
    await inOrder(large, COPIES_AT_ONCE, (task) => task());

    const ready = copying.filter((p) => p.failure === undefined);
    const recorded = await this.commitMany(ready.map((plan) => this.toRecord(plan)));
    const outcomes = new Map(ready.map((plan, i) => [plan, recorded[i]!]));
    return Promise.all(
      plans.map(async (plan): Promise<PromiseSettledResult<RecordOutcome>> => {
        if (stored.has(asBuildId(plan.result.job))) return { status: 'fulfilled', value: await this.finish(plan.result, 'cluster', 'duplicate', 0) };
        if (plan.failure !== undefined) return { status: 'rejected', reason: plan.failure };
        const outcome = outcomes.get(plan)!;
        if (outcome.status === 'rejected') return outcome;
        return { status: 'fulfilled', value: await this.finish(plan.result, 'cluster', outcome.value, plan.kept.length, plan.trace) };
      }),
    );
  }

  /** Copies one artifact of `plan` into `group` (committed later, with the others) or, without one, commits it at once. */
  private async copyArtifact(plan: ClusterPlan, artifact: NormalisedArtifact, group: StagedBlob[] | undefined): Promise<void> {
    if (plan.failure !== undefined) return;
    const what = `${plan.result.job} artifact ${artifact.path}`;
    try {
      const expected = { sha256: artifact.sha256, size: artifact.size, what };
      const staged = await this.blobs.stageNew(() => this.objectBytes(plan.result.worker, artifact.sha256, what), expected, { deferSync: group !== undefined });
      if (staged && group) group.push(staged);
      else if (staged) await staged.commit();
      plan.kept.push(artifact);
    } catch (e) {
      const missing = e instanceof RetryLaterError || e instanceof BlobMismatchError;
      if (!missing || !plan.lastAttempt) plan.failure ??= e instanceof RetryLaterError ? e : new RetryLaterError(message(e), { cause: e });
      else plan.skipped.set(artifact, `artifact ${artifact.path} not kept: ${message(e)}`);
    }
  }

  private toRecord(plan: ClusterPlan): BuildToRecord {
    plan.kept.sort((a, b) => (a.path < b.path ? -1 : 1));
    // In the order the result lists them, however the copies finished.
    const notes = [...plan.notes, ...plan.artifacts.flatMap((a) => plan.skipped.get(a) ?? []), ...plan.logNotes];
    return {
      result: plan.result,
      source: 'cluster',
      artifacts: plan.kept,
      ...(plan.log ? { log: plan.log } : {}),
      ...(notes.length ? { note: notes.join('\n') } : {}),
      ...(plan.trace === undefined ? {} : { trace: plan.trace }),
      storedAt: Date.now(),
    };
  }

  /**
   * An upload in the format of upload-format.ts. Every artifact is staged and verified
   * before any is committed, so a refused upload leaves nothing behind.
   */
  async fromUpload(body: AsyncIterable<Uint8Array>, options: { maxBytes?: number } = {}): Promise<{ build: BuildId; outcome: 'stored' }> {
    const reader = new ByteReader(body);
    let manifest: UploadManifest;
    try {
      const line = await reader.line(MAX_MANIFEST_BYTES, 'upload manifest');
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch (e) {
        throw new UploadRejectedError(400, `upload manifest (first line) is not JSON: ${message(e)}`);
      }
      manifest = parseMessage(UploadManifest, json, 'upload manifest');
    } catch (e) {
      throw rejection(e);
    }
    const result = manifest.result;
    const declared = result.artifacts.reduce((sum, a) => sum + a.size, 0);
    // Refused before a byte of an artifact is staged, when the manifest already says so.
    if (options.maxBytes !== undefined && declared > options.maxBytes) {
      throw new UploadRejectedError(413, `upload of ${result.job}: its artifacts come to ${declared} bytes, over the limit of ${options.maxBytes}`);
    }
    const problems: string[] = [];
    const artifacts = this.normalise(result.artifacts, 'upload', problems);
    if (problems.length) throw new UploadRejectedError(422, `upload of ${result.job}: ${problems.join('; ')}`);
    const logIndex = uploadedLogIndex(manifest);
    if (await buildExists(this.ds, asBuildId(result.job))) throw new UploadRejectedError(409, `build ${result.job} is already stored`);

    const staged: StagedBlob[] = [];
    try {
      // Bytes come in the manifest's order, duplicates included.
      for (const artifact of result.artifacts) {
        const path = normaliseArtifactPath(artifact.path, 'upload');
        const what = `upload of ${result.job}: artifact ${path.ok ? path.path : artifact.path}`;
        staged.push(await this.blobs.stage(reader.take(artifact.size, what), { sha256: asSha256(artifact.sha256), size: artifact.size, what }));
      }
      await reader.end(`upload of ${result.job}`);
    } catch (e) {
      await Promise.all(staged.map((s) => s.discard()));
      throw rejection(e);
    }
    for (const blob of staged) {
      if (await this.blobs.claim(blob.sha256)) await blob.discard();
      else await blob.commit();
    }
    const log = manifest.log === undefined ? undefined : { ...(await this.putText(manifest.log, `log of ${result.job}`)), ...logIndex };
    const outcome = await this.commit(result, 'upload', artifacts, log, []);
    if (outcome === 'duplicate') throw new UploadRejectedError(409, `build ${result.job} is already stored`);
    await this.finish(result, 'upload', outcome, artifacts.length);
    return { build: asBuildId(result.job), outcome };
  }

  private normalise(artifacts: readonly Artifact[], origin: BuildSource, problems: string[]): NormalisedArtifact[] {
    const byPath = new Map<string, NormalisedArtifact>();
    for (const a of artifacts) {
      const checked = normaliseArtifactPath(a.path, origin);
      if (!checked.ok) {
        problems.push(checked.reason);
        continue;
      }
      const earlier = byPath.get(checked.path);
      if (earlier && earlier.sha256 !== a.sha256) {
        problems.push(`artifact path ${JSON.stringify(checked.path)} is listed twice with different contents`);
        continue;
      }
      byPath.set(checked.path, { path: checked.path, size: a.size, sha256: asSha256(a.sha256) });
    }
    return [...byPath.values()];
  }

  private async commit(
    result: BuildResult,
    source: BuildSource,
    artifacts: NormalisedArtifact[],
    log: { sha256: Sha256; size: number; index?: string } | undefined,
    notes: string[],
  ): Promise<RecordOutcome> {
    const record = () =>
      recordBuild(this.ds, { result, source, artifacts, ...(log ? { log } : {}), ...(notes.length ? { note: notes.join('\n') } : {}), storedAt: Date.now() });
    try {
      return await this.metrics.timeDb('record', record);
    } catch (e) {
      throw new RetryLaterError(`storing ${result.job} in the database: ${message(e)}`, { cause: e });
    }
  }

  private async commitMany(builds: BuildToRecord[]): Promise<PromiseSettledResult<RecordOutcome>[]> {
    if (builds.length === 0) return [];
    const settled = await this.metrics.timeDb('record', () => recordBuilds(this.ds, builds));
    return settled.map((s, i) =>
      s.status === 'fulfilled'
        ? s
        : { status: 'rejected', reason: new RetryLaterError(`storing ${builds[i]!.result.job} in the database: ${message(s.reason)}`, { cause: s.reason }) },
    );
  }

  private async finish(result: BuildResult, source: BuildSource, outcome: RecordOutcome, artifacts: number, trace?: string): Promise<RecordOutcome> {
    this.metrics.ingested.inc({ source, outcome });
    if (outcome !== 'stored') return outcome;
    this.metrics.ingestLag.observe({ source }, Math.max(0, Date.now() - result.finishedAt) / 1000);
    const id = asBuildId(result.job);
    this.listener.stored(id);
    const fields = jobFields(result, trace);
    this.logger.log(`stored ${source} build ${result.job} of ${JSON.stringify(result.name)} (${result.state}, ${artifacts} artifact(s))`, fields);
    void this.hooks
      .afterStored({
        build: result.job,
        job: result.name,
        state: result.state,
        pool: result.pool,
        platform: result.platform,
        client: result.client,
        worker: result.worker,
        finishedAt: result.finishedAt,
        durationMs: Math.max(0, result.finishedAt - result.startedAt),
        artifacts,
        ...(this.publicUrl ? { url: `${this.publicUrl}/builds/${result.job}` } : {}),
      })
      .catch((e: unknown) => this.logger.error(`upload hooks for ${result.job}: ${message(e)}`, fields));
    return outcome;
  }

  /** Stages the log of `plan`'s last run into `group`, noting what of it is missing. */
  private async archiveClusterLog(plan: ClusterPlan, group: StagedBlob[]): Promise<void> {
    if (plan.failure !== undefined) return;
    const { result } = plan;
    let stored;
    try {
      stored = await readStoredLog(this.bus, { client: result.client, job: result.job, worker: result.worker, attempt: result.attempts });
    } catch (e) {
      plan.failure ??= new RetryLaterError(`reading the log of ${result.job} from the log stream: ${message(e)}`, { cause: e });
      return;
    }
    if (!stored) return;
    if (!stored.complete) plan.logNotes.push(`the log stream held ${stored.chunks} chunk(s) of attempt ${result.attempts} but not the last one`);
    if (result.attempts > 1) {
      const earlier = Array.from({ length: result.attempts - 1 }, (_, i) => i + 1);
      plan.logNotes.push(`the log is attempt ${result.attempts}'s; the partial log(s) of attempt(s) ${earlier.join(', ')} were not kept`);
    }
    try {
      const bytes = Buffer.from(stored.text, 'utf8');
      const log = { sha256: asSha256(createHash('sha256').update(bytes).digest('hex')), size: bytes.length };
      const staged = await this.blobs.stageNew(() => once(bytes), { ...log, what: `log of ${result.job}` }, { deferSync: true });
      if (staged) group.push(staged);
      plan.log = { ...log, index: stored.index };
    } catch (e) {
      plan.failure ??= new RetryLaterError(`keeping the log of ${result.job}: ${message(e)}`, { cause: e });
    }
  }

  private async putText(text: string, what: string): Promise<{ sha256: Sha256; size: number }> {
    const bytes = Buffer.from(text, 'utf8');
    const sha256 = asSha256(createHash('sha256').update(bytes).digest('hex'));
    await this.blobs.put(() => once(bytes), { sha256, size: bytes.length, what });
    return { sha256, size: bytes.length };
  }

  private objectBytes(worker: string, sha256: Sha256, what: string): Promise<AsyncIterable<Uint8Array>> {
    this.artifacts ??= new ArtifactSource(this.bus);
    return this.artifacts.open(worker, sha256, what).catch((e: unknown) => {
      throw new RetryLaterError(message(e), { cause: e });
    });
  }
}

/** Copies from the object store in flight at once, over a whole batch of results. */
const COPIES_AT_ONCE = 32;
/**
 * Artifacts up to this size are committed as one group once every one is copied; a larger
 * one is committed as soon as it is copied, so a big copy does not hold back the small.
 */
const GROUPED_MAX_BYTES = 1024 * 1024;

interface ClusterPlan extends ClusterDelivery {
  readonly artifacts: NormalisedArtifact[];
  /** Problems with the listed artifacts (bad paths), noted on the build. */
  readonly notes: string[];
  /** Artifacts given up on the last attempt, with why. */
  readonly skipped: Map<NormalisedArtifact, string>;
  readonly logNotes: string[];
  /** Artifacts in the blob store (or staged into it). */
  readonly kept: NormalisedArtifact[];
  log?: { sha256: Sha256; size: number; index: string };
  /** Why this result cannot be stored now; it is delivered again. */
  failure?: unknown;
}

/** A result's fields on a log line about it (service-kit's ServiceLogger spreads them into the line). */
export function jobFields(result: BuildResult, trace?: string): Record<string, string> {
  return { job: result.job, worker: result.worker, pool: result.pool, client: result.client, ...(trace === undefined ? {} : { trace }) };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** Runs `work` over `items`, at most `limit` at once, starting them in order; fails with the first failure once all started ones settle. */
async function inOrder<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const lane = async () => {
    while (next < items.length && failure === undefined) {
      const item = items[next++]!;
      await work(item).catch((e: unknown) => {
        failure ??= e;
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure !== undefined) throw failure;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The index an upload's manifest gave its log, as builds.log_index keeps it: checked
 * against the log as the build page will read it, so a page never finds it wrong. An
 * index that does not fit its log, or comes without one, refuses the upload (422).
 */
function uploadedLogIndex(manifest: UploadManifest): { index: string } | Record<string, never> {
  if (manifest.logIndex === undefined) return {};
  const what = `upload of ${manifest.result.job}`;
  if (manifest.log === undefined) throw new UploadRejectedError(422, `${what}: logIndex without a log`);
  const index = JSON.stringify(manifest.logIndex);
  try {
    decodeLogIndex(index, Buffer.byteLength(manifest.log), what);
  } catch (e) {
    throw new UploadRejectedError(422, message(e));
  }
  return { index };
}

function rejection(e: unknown): UploadRejectedError {
  if (e instanceof UploadRejectedError) return e;
  if (e instanceof TruncatedError) return new UploadRejectedError(400, e.message);
  if (e instanceof BlobMismatchError) return new UploadRejectedError(422, e.message);
  if (e instanceof FramingError) return new UploadRejectedError(e.kind === 'too-long' ? 413 : 400, e.message);
  if (e instanceof Error && e.name === 'RejectedError') return new UploadRejectedError(400, e.message);
  throw e;
}
