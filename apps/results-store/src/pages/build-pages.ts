/**
 * A stored build's page as bytes ready to send: the pre-rendered copy when it is
 * current, otherwise rendered (and kept for next time). Also renders a build's page
 * when the build is stored, so the first reader does not pay for it, and for the
 * backfill (maintenance/page-backfill.ts), builds stored before pages were kept.
 */
import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Inject, Injectable, Optional, type LoggerService } from '@nestjs/common';
import { BlobStore } from '../blobs/blob-store.js';
import type { ResultsConfig } from '../config.js';
import type { BuildId, Sha256 } from '../ids.js';
import { BuildQueries, type BuildDetail, type PageSource } from '../queries/build-queries.js';
import { CONFIG, LOGGER } from '../tokens.js';
import { buildPage } from './build-page.js';
import { html, type Html } from '../view/html.js';
import { decodeLogIndex, LogIndexer, type LogIndex } from '../log-index.js';
import { renderLog } from '../view/log-view.js';
import { PrerenderedPages, type PageBytes, type PageFacts } from './prerendered-pages.js';

const MAX_RENDERED_LOG = 4 * 1024 * 1024;
/** Copies of first views waiting to be written, at most (about a second of them at 200 requests/s). */
const MAX_QUEUED_WRITES = 200;

/** What the backfill found for one build: a current copy, a copy saved now, or a page it may not keep. */
export type BackfillOutcome = 'current' | 'saved' | 'unsaved';

interface Rendered {
  readonly bytes: PageBytes;
  readonly facts: PageFacts;
  /** False when the page shows a missing or damaged log: the blob may be restored, so it is not kept. */
  readonly keep: boolean;
}

@Injectable()
export class BuildPages {
  private readonly prerendered: PrerenderedPages;
  private readonly publicUrl: string | undefined;
  /** Where readers last came from: the address for pages rendered at store time when no public URL is set. */
  private lastBaseUrl: string | undefined;
  /** Copies of pages already sent, waiting to be written or being written. */
  private readonly saving = new Set<Promise<void>>();
  /** The last of those writes: they go one at a time (see `renderForReader`). */
  private lastWrite: Promise<void> = Promise.resolve();

  constructor(
    @Inject(BuildQueries) private readonly queries: BuildQueries,
    @Inject(BlobStore) private readonly blobs: BlobStore,
    @Inject(CONFIG) settings: Pick<ResultsConfig, 'dataDir' | 'publicUrl'>,
    @Optional() @Inject(LOGGER) private readonly logger?: Pick<LoggerService, 'error'>,
  ) {
    this.publicUrl = settings.publicUrl;
    this.prerendered = new PrerenderedPages(settings.dataDir, rendererFingerprint());
  }

  /** The page of stored build `id` as seen from `baseUrl`; undefined when the build is not stored. */
  async get(id: BuildId, baseUrl: string): Promise<PageBytes | undefined> {
    this.lastBaseUrl = baseUrl;
    // The file first: with no copy, asking whether one is current would only add a query to a render.
    const kept = await this.prerendered.load(id);
    if (!kept) return this.renderForReader(id, baseUrl);
    const facts = await this.queries.pageFacts(id);
    if (!facts) {
      // Deleted by retention: its copy is of no use.
      await this.prerendered.remove(id).catch(() => undefined);
      return undefined;
    }
    return kept.stamp === this.prerendered.stamp({ id, baseUrl, ...facts }) ? kept : this.renderForReader(id, baseUrl);
  }

  /** The address pages are rendered for when no reader is asking; undefined until known. */
  defaultBaseUrl(): string | undefined {
    return this.publicUrl ?? this.lastBaseUrl;
  }

  /** The renderer's fingerprint: kept copies from another one are never served. */
  get renderer(): string {
    return this.prerendered.renderer;
  }

  /** Renders a just-stored build's page ahead of its first reader. */
  async prerender(id: BuildId): Promise<void> {
    const baseUrl = this.defaultBaseUrl();
    // Without an address the commands on the page cannot be written; the first reader renders it.
    if (baseUrl === undefined) return;
    const source = await this.queries.pageSource(id);
    if (!source) return;
    const page = await this.render(source, baseUrl);
    if (page.keep) await this.save(page);
  }

  /**
   * Keeps a current copy of the page of `source` (read in bulk by the backfill): left
   * alone when the kept copy is current, rendered and saved otherwise. Throws when the
   * copy cannot be written.
   */
  async backfill(source: PageSource, baseUrl: string): Promise<BackfillOutcome> {
    const kept = await this.prerendered.load(source.build.id);
    if (kept && kept.stamp === this.prerendered.stamp(factsOf(source, baseUrl))) return 'current';
    const page = await this.render(source, baseUrl);
    if (!page.keep) return 'unsaved';
    await this.prerendered.save(page.facts, page.bytes);
    return 'saved';
  }

  /** Resolves once the copies of pages already sent are written (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.saving.size) await Promise.all([...this.saving]);
  }

  private async renderForReader(id: BuildId, baseUrl: string): Promise<PageBytes | undefined> {
    const source = await this.queries.pageSource(id);
    if (!source) return undefined;
    const page = await this.render(source, baseUrl);
    // Written once the reader's response is on its way: the file system calls (1-2 ms of
    // waiting on this machine, the largest part of a first view) are no part of it.
    // One write at a time: creating a file can wait for an ext4 journal commit (up to
    // ~100 ms, every 5 s while files are being created), and a write per first view
    // filled libuv's four threads with such waits, leaving none for the file reads of
    // other requests, which then stalled with them. Past a bounded queue the copy is
    // left for the next reader or the backfill.
    if (page.keep && this.saving.size < MAX_QUEUED_WRITES) {
      const saving = this.lastWrite.then(() => nextTurn()).then(() => this.save(page));
      this.lastWrite = saving;
      this.saving.add(saving);
      void saving.finally(() => this.saving.delete(saving));
    }
    return page.bytes;
  }

  private async render(source: PageSource, baseUrl: string): Promise<Rendered> {
    const log = await this.storedLog(source.build);
    const bytes = PrerenderedPages.encode(buildPage(source.build, log.html, source.previous, baseUrl).value);
    return { bytes, facts: factsOf(source, baseUrl), keep: log.intact };
  }

  /** A copy that cannot be written is only rendered again by its next reader. */
  private async save(page: Rendered): Promise<void> {
    try {
      await this.prerendered.save(page.facts, page.bytes);
    } catch (e) {
      this.logger?.error(`keeping the page of build ${page.facts.id}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** The last `lines` lines of stored build `id`'s log; undefined when the build, its log or an intact copy of it is not stored. */
  async logTail(id: BuildId, lines: number): Promise<string[] | undefined> {
    const sha = (await this.queries.getBuild(id))?.logSha256;
    const text = sha ? await this.logText(sha) : undefined;
    return text?.replace(/\n$/, '').split('\n').slice(-lines);
  }

  /** A log blob's text; undefined when it is missing or no longer hashes to its name. */
  private async logText(sha: Sha256): Promise<string | undefined> {
    const blob = await this.blobs.openVerified(sha).catch(() => undefined);
    if (!blob) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of blob.stream()) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  private async storedLog(build: BuildDetail): Promise<{ html: Html | undefined; intact: boolean }> {
    const sha: Sha256 | null = build.logSha256;
    if (!sha) return { html: undefined, intact: true };
    if (build.logBytes !== null && build.logBytes > MAX_RENDERED_LOG)
      return { html: html`<p>The log is ${build.logBytes} bytes, too long to show here.</p>`, intact: true };
    const text = await this.logText(sha);
    if (text === undefined) return { html: html`<p class="note">The log blob is missing or damaged; run <code>verify</code>.</p>`, intact: false };
    let index: LogIndex | undefined;
    let unreadable: Html | string = '';
    try {
      index = build.logIndex === null ? undefined : decodeLogIndex(build.logIndex, Buffer.byteLength(text), `build ${build.id}`);
    } catch (e) {
      // The log still shows, as logs stored before the index do.
      unreadable = html`<p class="note">${e instanceof Error ? e.message : String(e)}: the log shows without times or steps.</p>`;
    }
    return { html: html`${unreadable}${renderLog(text, { failed: build.state === 'failed', index })}`, intact: true };
  }
}

function factsOf(source: PageSource, baseUrl: string): PageFacts {
  const { build, previous } = source;
  return { id: build.id, storedAt: build.storedAt, tags: build.tags, previous, baseUrl };
}

/**
 * A hash of a sample page that uses every part of the build page and the log view: it
 * changes whenever a release renders pages differently, which retires the copies kept
 * by the release before.
 */
export function rendererFingerprint(): string {
  const sample: BuildDetail = {
    id: 'j-00000000sample00' as BuildId,
    job: 'sample <job>',
    pool: 'pool',
    platform: 'linux/amd64',
    client: 'client',
    worker: 'worker',
    state: 'failed',
    startedAt: 1_000,
    finishedAt: 2_000,
    durationMs: 1_000,
    stepsTotal: 2,
    stepsCached: 1,
    failure: 'step 2: exit 1',
    spec: '(from busybox)\n(run (shell "false"))',
    contextDigest: 'sha256:context',
    cacheHint: 'hint',
    snapshotId: 'snapshot',
    attempts: 1,
    submittedAt: 500,
    storedAt: 3_000,
    source: 'cluster',
    note: 'note',
    logSha256: 'a'.repeat(64) as Sha256,
    logBytes: 10,
    logIndex: null,
    trace: null,
    steps: [
      { position: 0, stage: '', op: '(from busybox)', stepId: 'b'.repeat(64), cached: true, ms: 10 },
      { position: 1, stage: 'build', op: '(run (shell "false"))', stepId: 'c'.repeat(64), cached: false, ms: 20 },
    ],
    artifacts: [{ path: 'out/a b', size: 2048, sha256: 'd'.repeat(64) as Sha256 }],
    tags: ['release'],
  };
  const index = new LogIndexer();
  const pieces = [
    { text: 'before\n' },
    { text: '', step: { t: 'started', heading: '(from busybox)', stage: '' } },
    { text: '(from busybox)\n' },
    { text: '', step: { t: 'finished', stage: '', id: 'b'.repeat(64), cached: true, ms: 10 } },
    { text: '\u001b[1;31mred\u001b[0m\r\u001b[1;31mRED\u001b[0m\n' },
  ] as const;
  pieces.forEach((piece, i) => index.add(piece, 1_000 + i));
  const text = pieces.map((p) => p.text).join('');
  const log = renderLog(text, { failed: true, index: decodeLogIndex(index.encode(), Buffer.byteLength(text), 'the sample') });
  const pages = [
    buildPage(sample, log, 'j-00000000previous', 'http://sample'),
    buildPage(
      { ...sample, failure: null, note: null, tags: [], steps: [], artifacts: [], contextDigest: null, logSha256: null },
      undefined,
      undefined,
      'http://sample',
    ),
  ];
  return createHash('sha256')
    .update(pages.map((p) => p.value).join('\0'))
    .digest('hex')
    .slice(0, 32);
}
