import { existsSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAVOURS, openTestDatabase, sampleResult, sha256Hex, type OpenTestDatabase } from '../../../test/support/results-store.js';
import { BlobStore } from '../src/blobs/blob-store.js';
import { BuildEntity } from '../src/db/build.entity.js';
import { BuildTagEntity, TagEntity } from '../src/db/tag.entity.js';
import { recordBuild } from '../src/ingest/build-recorder.js';
import { asBuildId, asSha256, type BuildId } from '../src/ids.js';
import { BuildQueries } from '../src/queries/build-queries.js';
import { buildPage } from '../src/pages/build-page.js';
import { BuildPages, rendererFingerprint } from '../src/pages/build-pages.js';
import { renderLog } from '../src/view/log-view.js';
import { PrerenderedPages } from '../src/pages/prerendered-pages.js';

const BASE = 'http://cairn.test';
const LOG = 'compiling\n\u001b[31merror\u001b[0m: it broke\n';

describe.each(FLAVOURS)('pre-rendered build pages on %s', (flavour) => {
  let database: OpenTestDatabase;
  let dir: string;
  let ds: DataSource;
  let blobs: BlobStore;
  let queries: BuildQueries;
  const dataDir = () => join(dir, 'data');
  // A new instance per read: nothing survives in memory, as after a restart.
  const restarted = () => new BuildPages(queries, blobs, { dataDir: dataDir(), publicUrl: BASE });
  const files = () => new PrerenderedPages(dataDir(), rendererFingerprint());

  /** The page as rendered from the database right now, without any kept copy. */
  async function freshRender(id: BuildId): Promise<string> {
    const build = (await queries.getBuild(id))!;
    const previous = (await queries.listBuilds({ job: build.job, before: `${build.finishedAt}.${build.id}`, limit: 1 })).items[0]?.id;
    return buildPage(build, renderLog(LOG), previous, BASE).value;
  }

  async function store(overrides: Parameters<typeof sampleResult>[0] = {}): Promise<BuildId> {
    const bytes = Buffer.from(LOG);
    const sha256 = asSha256(sha256Hex(bytes));
    await blobs.put(
      async function* () {
        yield bytes;
      },
      { sha256, size: bytes.length, what: 'log' },
    );
    const result = sampleResult(overrides);
    expect(await recordBuild(ds, { result, source: 'cluster', artifacts: [], log: { sha256, size: bytes.length }, storedAt: Date.now() })).toBe('stored');
    return asBuildId(result.job);
  }

  async function served(id: BuildId, pages = restarted()): Promise<string> {
    const page = await pages.get(id, BASE);
    expect(page).toBeDefined();
    // The kept gzip is of exactly the page sent uncompressed.
    expect(gunzipSync(page!.gzip).equals(page!.body)).toBe(true);
    // A page rendered for this reader is kept once it is sent.
    await pages.idle();
    return page!.body.toString('utf8');
  }

  beforeAll(async () => {
    database = await openTestDatabase(flavour, 'cairn-rs-pages-');
    ({ dir, ds } = database);
    blobs = new BlobStore(dataDir());
    await blobs.init();
    queries = new BuildQueries(ds);
  });
  afterAll(async () => {
    await database?.close();
  });

  it('renders a page when its build is stored and serves that copy, equal to a fresh render, after a restart', async () => {
    const id = await store({ name: 'kept-page' });
    await expect(stat(files().path(id))).rejects.toThrow();
    await restarted().prerender(id);
    const kept = await readFile(files().path(id));
    expect(await served(id)).toBe(await freshRender(id));
    // Served from the copy, not rendered again into it.
    expect((await readFile(files().path(id))).equals(kept)).toBe(true);
  });

  it('sends a first view before keeping its copy, then serves that copy', async () => {
    const id = await store({ name: 'first-view' });
    const pages = restarted();
    const page = await pages.get(id, BASE);
    // Not yet written when the reader has the page: the write is no part of their wait.
    expect(existsSync(files().path(id))).toBe(false);
    expect(page!.body.toString('utf8')).toBe(await freshRender(id));
    await pages.idle();
    const kept = await readFile(files().path(id));
    expect(await served(id)).toBe(page!.body.toString('utf8'));
    expect((await readFile(files().path(id))).equals(kept)).toBe(true);
  });

  it('serves the kept copy rather than rendering (so the copy is what readers get)', async () => {
    const id = await store({ name: 'marked-page' });
    const facts = (await queries.pageFacts(id))!;
    await files().write({ id, baseUrl: BASE, ...facts }, '<p>the kept copy</p>');
    expect(await served(id)).toBe('<p>the kept copy</p>');
  });

  it('renders again a copy that was tampered with or is missing', async () => {
    const id = await store({ name: 'tampered-page' });
    const pages = restarted();
    await pages.prerender(id);
    const path = files().path(id);
    const file = await readFile(path);
    // Same length, one byte of the page changed: only the checksum tells.
    const at = file.indexOf('</main>');
    file[at + 2] = 'x'.charCodeAt(0);
    await writeFile(path, file);
    const fresh = await freshRender(id);
    expect(await served(id)).toBe(fresh);
    expect((await readFile(path)).includes('</main>')).toBe(true);

    await rm(path);
    expect(await served(id)).toBe(fresh);
    await expect(stat(path)).resolves.toBeDefined();

    await writeFile(path, 'garbage');
    expect(await served(id)).toBe(fresh);
  });

  it('renders again when the build is tagged or untagged', async () => {
    const id = await store({ name: 'tagged-page' });
    await restarted().prerender(id);
    const tag = await ds.getRepository(TagEntity).save({ name: 'keep-me' });
    await ds.getRepository(BuildTagEntity).insert({ buildId: id, tagId: tag.id });
    const tagged = await served(id);
    expect(tagged).toContain('/builds?tag=keep-me');
    expect(tagged).toBe(await freshRender(id));
    await ds.getRepository(BuildTagEntity).delete({ buildId: id, tagId: tag.id });
    const untagged = await served(id);
    expect(untagged).not.toContain('/builds?tag=keep-me');
    expect(untagged).toBe(await freshRender(id));
  });

  it('renders again when an earlier build of the job arrives late or the one before is deleted', async () => {
    const now = Date.now();
    const id = await store({ name: 'history-page', startedAt: now - 1000, finishedAt: now });
    await restarted().prerender(id);
    expect(await served(id)).toContain('first build of this job');
    const earlier = await store({ name: 'history-page', startedAt: now - 5000, finishedAt: now - 4000 });
    const compared = await served(id);
    expect(compared).toContain(`/compare?a=${earlier}&amp;b=${id}`);
    expect(compared).toBe(await freshRender(id));
    // As retention does.
    await ds.query(flavour === 'postgres' ? 'DELETE FROM steps WHERE build_id = $1' : 'DELETE FROM steps WHERE build_id = ?', [earlier]);
    await ds.getRepository(BuildEntity).delete({ id: earlier });
    expect(await served(id)).toContain('first build of this job');
  });

  it('drops the copy of a build that is no longer stored', async () => {
    const id = await store({ name: 'deleted-page' });
    await restarted().prerender(id);
    await ds.query(flavour === 'postgres' ? 'DELETE FROM steps WHERE build_id = $1' : 'DELETE FROM steps WHERE build_id = ?', [id]);
    await ds.getRepository(BuildEntity).delete({ id });
    expect(await restarted().get(id, BASE)).toBeUndefined();
    await expect(stat(files().path(id))).rejects.toThrow();
  });
});
