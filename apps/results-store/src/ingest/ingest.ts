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
import type { LoggerService } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { DataSource } from 'typeorm';
import { BlobMismatchError, type BlobStore, type StagedBlob } from '../blobs/blob-store.js';
import type { BuildSource } from '../db/build.entity.js';
import type { UploadHooks } from '../hooks/upload-hooks.js';
import { asBuildId, asSha256, type BuildId, type Sha256 } from '../ids.js';
import { readStoredLog } from '../live/log-stream.js';
import type { ResultsMetrics } from '../ops/results-metrics.js';
import { normaliseArtifactPath } from './artifact-path.js';
import { ArtifactSource } from './artifact-source.js';
import { buildExists, recordBuild, type RecordOutcome } from './build-recorder.js';
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

export interface IngestDeps {
  readonly ds: DataSource;
  readonly blobs: BlobStore;
  readonly bus?: NatsConnection;
  readonly metrics?: ResultsMetrics;
  readonly hooks?: UploadHooks;
  readonly logger: Pick<LoggerService, 'log' | 'warn' | 'error'>;
  /** Told of every newly stored build (live pages reload). */
  readonly onStored?: (build: BuildId) => void;
  readonly publicUrl?: string;
}

interface ClusterOptions {
  /** The stream will not deliver this result again: store what can be stored, noting what could not. */
  readonly lastAttempt: boolean;
  /** Called during long copies so the stream does not redeliver meanwhile. */
  readonly working?: () => void;
}

type NormalisedArtifact = { path: string; size: number; sha256: Sha256 };

export class Ingest {
  private artifacts: ArtifactSource | undefined;

  constructor(private readonly deps: IngestDeps) {}

  /** A result from the CAIRN_RESULTS stream; its artifacts are copied from the object store. */
  async fromCluster(result: BuildResult, options: ClusterOptions): Promise<RecordOutcome> {
    const id = asBuildId(result.job);
    if (await buildExists(this.deps.ds, id)) return this.finish(result, 'cluster', 'duplicate', 0);
    const notes: string[] = [];
    const artifacts = this.normalise(result.artifacts, 'cluster', notes);
    const kept: NormalisedArtifact[] = [];
    const copy = async (artifact: NormalisedArtifact) => {
      options.working?.();
      try {
        await this.deps.blobs.put(() => this.objectBytes(artifact.sha256, `${result.job} artifact ${artifact.path}`), {
          sha256: artifact.sha256,
          size: artifact.size,
          what: `${result.job} artifact ${artifact.path}`,
        });
        kept.push(artifact);
      } catch (e) {
        const missing = e instanceof RetryLaterError || e instanceof BlobMismatchError;
        if (!missing || !options.lastAttempt) throw e instanceof RetryLaterError ? e : new RetryLaterError(message(e), { cause: e });
        notes.push(`artifact ${artifact.path} not kept: ${message(e)}`);
      }
    };
    // Copies overlap (each is a round trip to NATS and an fsync), in the listed order.
    await inOrder(artifacts, COPIES_AT_ONCE, copy);
    kept.sort((a, b) => (a.path < b.path ? -1 : 1));
    const log = await this.archiveClusterLog(result, notes);
    const outcome = await this.commit(result, 'cluster', kept, log, notes);
    return this.finish(result, 'cluster', outcome, kept.length);
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
    if (await buildExists(this.deps.ds, asBuildId(result.job))) throw new UploadRejectedError(409, `build ${result.job} is already stored`);

    const staged: StagedBlob[] = [];
    try {
      // Bytes come in the manifest's order, duplicates included.
      for (const artifact of result.artifacts) {
        const path = normaliseArtifactPath(artifact.path, 'upload');
        const what = `upload of ${result.job}: artifact ${path.ok ? path.path : artifact.path}`;
        staged.push(await this.deps.blobs.stage(reader.take(artifact.size, what), { sha256: asSha256(artifact.sha256), size: artifact.size, what }));
      }
      await reader.end(`upload of ${result.job}`);
    } catch (e) {
      await Promise.all(staged.map((s) => s.discard()));
      throw rejection(e);
    }
    for (const blob of staged) {
      if (await this.deps.blobs.claim(blob.sha256)) await blob.discard();
      else await blob.commit();
    }
    const log = manifest.log === undefined ? undefined : await this.putText(manifest.log, `log of ${result.job}`);
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

  private async commit(result: BuildResult, source: BuildSource, artifacts: NormalisedArtifact[], log: { sha256: Sha256; size: number } | undefined, notes: string[]): Promise<RecordOutcome> {
    const record = () =>
      recordBuild(this.deps.ds, { result, source, artifacts, ...(log ? { log } : {}), ...(notes.length ? { note: notes.join('\n') } : {}), storedAt: Date.now() });
    try {
      return await (this.deps.metrics ? this.deps.metrics.timeDb('record', record) : record());
    } catch (e) {
      throw new RetryLaterError(`storing ${result.job} in the database: ${message(e)}`, { cause: e });
    }
  }

  private async finish(result: BuildResult, source: BuildSource, outcome: RecordOutcome, artifacts: number): Promise<RecordOutcome> {
    this.deps.metrics?.ingested.inc({ source, outcome });
    if (outcome !== 'stored') return outcome;
    this.deps.metrics?.ingestLag.observe({ source }, Math.max(0, Date.now() - result.finishedAt) / 1000);
    const id = asBuildId(result.job);
    this.deps.onStored?.(id);
    this.deps.logger.log(`stored ${source} build ${result.job} of ${JSON.stringify(result.name)} (${result.state}, ${artifacts} artifact(s))`);
    void this.deps.hooks
      ?.afterStored({
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
        ...(this.deps.publicUrl ? { url: `${this.deps.publicUrl}/builds/${result.job}` } : {}),
      })
      .catch((e: unknown) => this.deps.logger.error(`upload hooks for ${result.job}: ${message(e)}`));
    return outcome;
  }

  private async archiveClusterLog(result: BuildResult, notes: string[]): Promise<{ sha256: Sha256; size: number } | undefined> {
    if (!this.deps.bus) return undefined;
    let stored;
    try {
      stored = await readStoredLog(this.deps.bus, result.client, result.job);
    } catch (e) {
      throw new RetryLaterError(`reading the log of ${result.job} from the log stream: ${message(e)}`, { cause: e });
    }
    if (!stored) return undefined;
    if (!stored.complete) notes.push(`the log stream held ${stored.chunks} chunk(s) of attempt ${stored.attempt} but not the last one`);
    if (stored.earlierAttempts.length) notes.push(`the log is attempt ${stored.attempt}'s; the partial log(s) of attempt(s) ${stored.earlierAttempts.join(', ')} were not kept`);
    return this.putText(stored.text, `log of ${result.job}`);
  }

  private async putText(text: string, what: string): Promise<{ sha256: Sha256; size: number }> {
    const bytes = Buffer.from(text, 'utf8');
    const sha256 = asSha256(createHash('sha256').update(bytes).digest('hex'));
    await this.deps.blobs.put(
      () => (async function* () {
        yield bytes;
      })(),
      { sha256, size: bytes.length, what },
    );
    return { sha256, size: bytes.length };
  }

  private objectBytes(sha256: Sha256, what: string): Promise<AsyncIterable<Uint8Array>> {
    if (!this.deps.bus) throw new RetryLaterError(`${what}: no bus to fetch it from`);
    this.artifacts ??= new ArtifactSource(this.deps.bus);
    return this.artifacts.open(sha256, what).catch((e: unknown) => {
      throw new RetryLaterError(message(e), { cause: e });
    });
  }

}

const COPIES_AT_ONCE = 6;

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

function rejection(e: unknown): UploadRejectedError {
  if (e instanceof UploadRejectedError) return e;
  if (e instanceof TruncatedError) return new UploadRejectedError(400, e.message);
  if (e instanceof BlobMismatchError) return new UploadRejectedError(422, e.message);
  if (e instanceof FramingError) return new UploadRejectedError(e.kind === 'too-long' ? 413 : 400, e.message);
  if (e instanceof Error && e.name === 'RejectedError') return new UploadRejectedError(400, e.message);
  throw e;
}
