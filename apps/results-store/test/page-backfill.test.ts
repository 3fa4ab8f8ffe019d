import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoggerService } from '@nestjs/common';
import { Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import {
  createDatabase,
  FLAVOURS,
  openTestDatabase,
  sampleResult,
  sha256Hex,
  startResultsStore,
  type ResultsStoreUnderTest,
  type OpenTestDatabase,
  type TestDatabase,
} from '../../../test/support/results-store.js';
import { BlobStore } from '../src/blobs/blob-store.js';
import { openDatabase } from '../src/db/data-source.js';
import { recordBuild } from '../src/ingest/build-recorder.js';
import { asBuildId, asSha256, type BuildId, type Sha256 } from '../src/ids.js';
import { BackfillProgress, backfillProgressPath, type BackfillPosition } from '../src/maintenance/backfill-progress.js';
import { PageBackfill } from '../src/maintenance/page-backfill.js';
import { ResultsMetrics } from '../src/ops/results-metrics.js';
import { BuildQueries } from '../src/queries/build-queries.js';
import { buildPage } from '../src/pages/build-page.js';
import { BuildPages, rendererFingerprint } from '../src/pages/build-pages.js';
import { renderLog } from '../src/view/log-view.js';
import { PrerenderedPages } from '../src/pages/prerendered-pages.js';

const BASE = 'http://cairn.test';
const LOG = '(from busybox)\n---> using "aaa" from cache\n\u001b[32mok\u001b[0m\n';
const quietLogger: LoggerService = { log: () => undefined, warn: () => undefined, error: () => undefined };

async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The count of a labelled counter, or a gauge's value. */
async function metric(metrics: ResultsMetrics, name: 'backfillBuilds' | 'backfillRemaining' | 'backfillRunning', outcome?: string): Promise<number> {
  const { values } = await metrics[name].get();
  return values.filter((v) => outcome === undefined || v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0);
}

describe.each(FLAVOURS)('the page backfill on %s', (flavour) => {
  let database: OpenTestDatabase;
  let dir: string;
  let ds: DataSource;
  let blobs: BlobStore;
  let queries: BuildQueries;
  let log: { sha256: Sha256; size: number };
  const dataDir = () => join(dir, 'data');
  const files = () => new PrerenderedPages(dataDir(), rendererFingerprint());
  const progress = () => new BackfillProgress(backfillProgressPath(dataDir()));

  function backfill(options: { pages?: BuildPages; batch?: number; pauseMs?: number; busy?: boolean; metrics?: ResultsMetrics } = {}) {
    const pages = options.pages ?? new BuildPages(queries, blobs, { dataDir: dataDir(), publicUrl: BASE });
    const metrics = options.metrics ?? new ResultsMetrics(new Registry());
    const task = new PageBackfill(queries, pages, metrics, { busy: () => options.busy ?? false }, quietLogger, {
      dataDir: dataDir(),
      backfill: { batch: options.batch ?? 2, pauseMs: options.pauseMs ?? 0, retryMs: 10 },
    });
    return { task, pages, metrics };
  }

  /** Builds stored as they were before pages were kept: rows only, no saved page. `finishedAt` spaced a second apart, oldest first. */
  async function storeOld(count: number, overrides: Parameters<typeof sampleResult>[0] = {}): Promise<BuildId[]> {
    const ids: BuildId[] = [];
    const base = Date.now() - 3_600_000;
    for (let i = 0; i < count; i++) {
      const result = sampleResult({ name: `old-${i % 2}`, startedAt: base + i * 1000 - 500, finishedAt: base + i * 1000, ...overrides });
      expect(await recordBuild(ds, { result, source: 'cluster', artifacts: [], log, storedAt: Date.now() })).toBe('stored');
      ids.push(asBuildId(result.job));
    }
    return ids;
  }

  /** The page as rendered from the database right now, the way a reader's first view was rendered before. */
  async function freshRender(id: BuildId, baseUrl = BASE): Promise<string> {
    const build = (await queries.getBuild(id))!;
    const previous = (await queries.listBuilds({ job: build.job, before: `${build.finishedAt}.${build.id}`, limit: 1 })).items[0]?.id;
    return buildPage(build, renderLog(LOG), previous, baseUrl).value;
  }

  beforeEach(async () => {
    database = await openTestDatabase(flavour, 'cairn-rs-backfill-');
    ({ dir, ds } = database);
    blobs = new BlobStore(dataDir());
    await blobs.init();
    queries = new BuildQueries(ds);
    const bytes = Buffer.from(LOG);
    log = { sha256: asSha256(sha256Hex(bytes)), size: bytes.length };
    await blobs.put(
      async function* () {
        yield bytes;
      },
      { ...log, what: 'log' },
    );
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await database?.close();
  });

  it('renders and keeps the page of every build that has none, newest first; a reader then gets the kept copy', async () => {
    const ids = await storeOld(5);
    for (const id of ids) expect(existsSync(files().path(id))).toBe(false);
    const { task, pages, metrics } = backfill({ batch: 2 });
    const visited: string[] = [];
    const original = pages.backfill.bind(pages);
    vi.spyOn(pages, 'backfill').mockImplementation((source, baseUrl) => (visited.push(source.build.id), original(source, baseUrl)));
    task.start();
    await task.finished();

    expect(visited).toEqual([...ids].reverse());
    expect(await metric(metrics, 'backfillBuilds', 'saved')).toBe(5);
    expect(await metric(metrics, 'backfillRemaining')).toBe(0);
    expect(await metric(metrics, 'backfillRunning')).toBe(0);
    expect((await progress().load())?.done).toBe(true);

    // A reader after a restart: the kept copy, byte for byte what a render gives, and no render.
    const reader = new BuildPages(queries, blobs, { dataDir: dataDir(), publicUrl: BASE });
    const render = vi.spyOn(queries, 'pageSource');
    const served = [];
    for (const id of ids) served.push(await reader.get(id, BASE));
    expect(render).not.toHaveBeenCalled();
    render.mockRestore();
    for (const [i, id] of ids.entries()) {
      expect(served[i]!.body.toString('utf8')).toBe(await freshRender(id));
      expect((await files().load(id))!.body.equals(served[i]!.body)).toBe(true);
    }
  });

  it('does not keep a page whose log blob is missing, and goes on with the next build', async () => {
    const [lost] = await storeOld(1, { name: 'lost-log' });
    const intact = await storeOld(2);
    await ds.query(flavour === 'postgres' ? 'UPDATE builds SET log_sha256 = $1 WHERE id = $2' : 'UPDATE builds SET log_sha256 = ? WHERE id = ?', [
      'e'.repeat(64),
      lost,
    ]);
    const { task, metrics } = backfill();
    task.start();
    await task.finished();
    expect(await metric(metrics, 'backfillBuilds', 'unsaved')).toBe(1);
    expect(await metric(metrics, 'backfillBuilds', 'saved')).toBe(2);
    expect(existsSync(files().path(lost!))).toBe(false);
    for (const id of intact) expect(existsSync(files().path(id))).toBe(true);
  });

  it('stops between builds and resumes after a restart where it stopped', async () => {
    const ids = await storeOld(7);
    // Busy readers: one build per 100 ms pause, so it can be stopped part of the way through.
    const first = backfill({ batch: 3, pauseMs: 100, busy: true });
    first.task.start();
    await until('three pages saved', async () => (await metric(first.metrics, 'backfillBuilds', 'saved')) >= 3);
    await first.task.stop();
    const done = await metric(first.metrics, 'backfillBuilds', 'saved');
    expect(done).toBeLessThan(7);
    const newestFirst = [...ids].reverse();
    const position = (await progress().load()) as BackfillPosition;
    expect(position).toMatchObject({ done: false, baseUrl: BASE, older: { id: newestFirst[done - 1] } });

    const second = backfill({ batch: 3 });
    const visited: string[] = [];
    const original = second.pages.backfill.bind(second.pages);
    vi.spyOn(second.pages, 'backfill').mockImplementation((source, baseUrl) => (visited.push(source.build.id), original(source, baseUrl)));
    second.task.start();
    await second.task.finished();
    // Only the builds the first run did not reach, and every page kept in the end.
    expect(visited).toEqual(newestFirst.slice(done));
    for (const id of ids) expect(existsSync(files().path(id)), id).toBe(true);
  });

  it('does nothing once its pass is done, and starts over when pages are for another address', async () => {
    const ids = await storeOld(3);
    const first = backfill();
    first.task.start();
    await first.task.finished();

    const again = backfill();
    const visits = vi.spyOn(again.pages, 'backfill');
    again.task.start();
    await again.task.finished();
    expect(visits).not.toHaveBeenCalled();
    expect(await metric(again.metrics, 'backfillRemaining')).toBe(0);

    // Say the public URL changed: every kept copy names the old one, so the pass starts over.
    const other = 'http://elsewhere.test';
    const moved = backfill({ pages: new BuildPages(queries, blobs, { dataDir: dataDir(), publicUrl: other }) });
    moved.task.start();
    await moved.task.finished();
    expect(await metric(moved.metrics, 'backfillBuilds', 'saved')).toBe(3);
    for (const id of ids) expect((await files().load(id))!.body.toString('utf8')).toBe(await freshRender(id, other));
  });

  it('leaves a current copy alone', async () => {
    const [id] = await storeOld(1);
    const pages = new BuildPages(queries, blobs, { dataDir: dataDir(), publicUrl: BASE });
    await pages.prerender(id!);
    const before = await readFile(files().path(id!));
    const { task, metrics } = backfill({ pages });
    task.start();
    await task.finished();
    expect(await metric(metrics, 'backfillBuilds', 'current')).toBe(1);
    expect((await readFile(files().path(id!))).equals(before)).toBe(true);
  });
});

describe.each(FLAVOURS)('the page backfill in the running service on %s', (flavour) => {
  let nats: RunningNats;
  let rs: ResultsStoreUnderTest | undefined;
  let db: TestDatabase;
  let dir: string;

  afterAll(async () => {
    await rs?.close();
    await nats?.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('backfills the pages of builds stored before, reports it in /metrics, and serves the saved pages', async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-rs-backfill-svc-'));
    db = await createDatabase(flavour, dir);
    const ds = await openDatabase(db.location);
    const ids: BuildId[] = [];
    for (let i = 0; i < 4; i++) {
      const result = sampleResult({ name: 'from-before' });
      await recordBuild(ds, { result, source: 'cluster', artifacts: [], storedAt: Date.now() });
      ids.push(asBuildId(result.job));
    }
    await ds.destroy();

    nats = await startNats();
    rs = await startResultsStore({ natsUrl: nats.url, env: { CAIRN_RESULTS_DB: db.location, CAIRN_RESULTS_PUBLIC_URL: BASE } });
    const metrics = async () => (await fetch(`${rs!.url}/metrics`)).text();
    await until('the backfill to finish', async () => {
      const text = await metrics();
      return /^cairn_results_page_backfill_remaining 0$/m.test(text) && /^cairn_results_page_backfill_running 0$/m.test(text);
    });
    expect(await metrics()).toMatch(/^cairn_results_page_backfill_builds_total\{outcome="saved"\} 4$/m);
    const saved = new PrerenderedPages(rs.dataDir, rendererFingerprint());
    for (const id of ids) {
      const kept = await saved.load(id);
      expect(kept, id).toBeDefined();
      const res = await fetch(`${rs.url}/builds/${id}`);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(kept!.body)).toBe(true);
    }
  });
});
