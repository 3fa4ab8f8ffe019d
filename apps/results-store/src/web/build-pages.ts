/**
 * A stored build's page as bytes ready to send: the pre-rendered copy when it is
 * current, otherwise rendered (and kept for next time). Also renders a build's page
 * when the build is stored, so the first reader does not pay for it.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { BlobStore } from '../blobs/blob-store.js';
import type { BuildId, Sha256 } from '../ids.js';
import type { BuildDetail, BuildQueries } from '../queries/build-queries.js';
import { buildPage } from './build-page.js';
import { html, type Html } from './html.js';
import { renderLog } from './log-view.js';
import { PrerenderedPages, type PageBytes } from './prerendered-pages.js';

const MAX_RENDERED_LOG = 4 * 1024 * 1024;

export class BuildPages {
  private readonly prerendered: PrerenderedPages;
  /** Where readers last came from: the address for pages rendered at store time when no public URL is set. */
  private lastBaseUrl: string | undefined;

  constructor(
    private readonly queries: BuildQueries,
    private readonly blobs: BlobStore,
    dataDir: string,
    private readonly publicUrl: string | undefined,
    private readonly onError: (message: string) => void = () => undefined,
  ) {
    this.prerendered = new PrerenderedPages(dataDir, rendererFingerprint());
  }

  /** The page of stored build `id` as seen from `baseUrl`; undefined when the build is not stored. */
  async get(id: BuildId, baseUrl: string): Promise<PageBytes | undefined> {
    this.lastBaseUrl = baseUrl;
    // The file first: with no copy, asking whether one is current would only add two queries to a render.
    const kept = await this.prerendered.load(id);
    if (!kept) return this.render(id, baseUrl);
    const facts = await this.queries.pageFacts(id);
    if (!facts) {
      // Deleted by retention: its copy is of no use.
      await this.prerendered.remove(id).catch(() => undefined);
      return undefined;
    }
    return kept.stamp === this.prerendered.stamp({ id, baseUrl, ...facts }) ? kept : this.render(id, baseUrl);
  }

  /** Renders a just-stored build's page ahead of its first reader. */
  async prerender(id: BuildId): Promise<void> {
    const baseUrl = this.publicUrl ?? this.lastBaseUrl;
    // Without an address the commands on the page cannot be written; the first reader renders it.
    if (baseUrl === undefined) return;
    await this.render(id, baseUrl);
  }

  private async render(id: BuildId, baseUrl: string): Promise<PageBytes | undefined> {
    const build = await this.queries.getBuild(id);
    if (!build) return undefined;
    const [log, history] = await Promise.all([this.storedLog(build), this.queries.listBuilds({ job: build.job, before: `${build.finishedAt}.${build.id}`, limit: 1 })]);
    const previous = history.items[0]?.id;
    const page = buildPage(build, log.html, previous, baseUrl).value;
    // A page showing a missing or damaged log is not kept: the blob may be restored.
    if (log.intact) {
      try {
        return await this.prerendered.write({ id, storedAt: build.storedAt, tags: build.tags, previous, baseUrl }, page);
      } catch (e) {
        this.onError(`keeping the page of build ${id}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    const body = Buffer.from(page, 'utf8');
    return { body, gzip: gzipSync(body, { level: 1 }) };
  }

  private async storedLog(build: BuildDetail): Promise<{ html: Html | undefined; intact: boolean }> {
    const sha: Sha256 | null = build.logSha256;
    if (!sha) return { html: undefined, intact: true };
    if (build.logBytes !== null && build.logBytes > MAX_RENDERED_LOG) return { html: html`<p>The log is ${build.logBytes} bytes, too long to show here.</p>`, intact: true };
    const blob = await this.blobs.openVerified(sha).catch(() => undefined);
    if (!blob) return { html: html`<p class="note">The log blob is missing or damaged; run <code>verify</code>.</p>`, intact: false };
    const chunks: Buffer[] = [];
    for await (const chunk of blob.stream()) chunks.push(chunk as Buffer);
    return { html: renderLog(Buffer.concat(chunks).toString('utf8')), intact: true };
  }
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
    steps: [
      { position: 0, stage: '', op: '(from busybox)', stepId: 'b'.repeat(64), cached: true, ms: 10 },
      { position: 1, stage: 'build', op: '(run (shell "false"))', stepId: 'c'.repeat(64), cached: false, ms: 20 },
    ],
    artifacts: [{ path: 'out/a b', size: 2048, sha256: 'd'.repeat(64) as Sha256 }],
    tags: ['release'],
  };
  const log = renderLog('before\n\u001b[1;31mred\u001b[0m\n');
  const pages = [buildPage(sample, log, 'j-00000000previous', 'http://sample'), buildPage({ ...sample, failure: null, note: null, tags: [], steps: [], artifacts: [], contextDigest: null, logSha256: null }, undefined, undefined, 'http://sample')];
  return createHash('sha256').update(pages.map((p) => p.value).join('\0')).digest('hex').slice(0, 32);
}
