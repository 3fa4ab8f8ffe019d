import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAVOURS, openTestDatabase, sampleResult, sha256Hex, type OpenTestDatabase, type TestDatabase } from '../../../test/support/results-store.js';
import { hashToken, TokenService } from '../src/auth/token-service.js';
import { BlobStore } from '../src/blobs/blob-store.js';
import { TokenEntity } from '../src/db/token.entity.js';
import { openDatabase } from '../src/db/data-source.js';
import { recordBuild } from '../src/ingest/build-recorder.js';
import { asBuildId, asSha256, type BuildId, type JobKey, type Sha256 } from '../src/ids.js';
import { applyRetention } from '../src/maintenance/retention.js';
import { savedPagePath } from '../src/pages/prerendered-pages.js';
import { verifyStore } from '../src/maintenance/verify-store.js';
import { BuildQueries } from '../src/queries/build-queries.js';
import { BuildTagEntity, TagEntity } from '../src/db/tag.entity.js';
import type { BuildResult } from '@cairn/contracts';

const DAY = 24 * 3600 * 1000;

async function putBlob(blobs: BlobStore, text: string): Promise<{ sha256: Sha256; size: number }> {
  const bytes = Buffer.from(text);
  const sha256 = asSha256(sha256Hex(bytes));
  await blobs.put(
    async function* () {
      yield bytes;
    },
    { sha256, size: bytes.length, what: text },
  );
  return { sha256, size: bytes.length };
}

describe.each(FLAVOURS)('the results database on %s', (flavour) => {
  let database: OpenTestDatabase;
  let dir: string;
  let db: TestDatabase;
  let ds: DataSource;
  let blobs: BlobStore;
  let queries: BuildQueries;

  const record = (result: BuildResult, artifacts: { path: string; size: number; sha256: Sha256 }[] = []) =>
    recordBuild(ds, { result, source: 'cluster', artifacts, storedAt: Date.now() });

  beforeAll(async () => {
    database = await openTestDatabase(flavour, 'cairn-rs-db-');
    ({ dir, db, ds } = database);
    blobs = new BlobStore(join(dir, 'blobs'));
    await blobs.init();
    queries = new BuildQueries(ds);
  });
  afterAll(async () => {
    await database?.close();
  });

  it('is migrated to exactly the schema the entities describe', async () => {
    const pending = await ds.driver.createSchemaBuilder().log();
    expect(pending.upQueries.map((q) => q.query)).toEqual([]);
    // Opening again finds nothing to migrate.
    const again = await openDatabase(db.location);
    expect(await again.showMigrations()).toBe(false);
    await again.destroy();
  });

  it('keeps a build with its steps, artifacts and job, and reads it back', async () => {
    const art = await putBlob(blobs, 'artifact one');
    const result = sampleResult({ name: 'kept', failure: undefined });
    expect(await record(result, [{ path: 'bin/one', ...art }])).toBe('stored');
    const build = await queries.getBuild(asBuildId(result.job));
    expect(build).toMatchObject({
      id: result.job,
      job: 'kept',
      pool: result.pool,
      state: 'succeeded',
      stepsTotal: 2,
      stepsCached: 1,
      durationMs: result.finishedAt - result.startedAt,
    });
    expect(build!.steps.map((s) => s.stepId)).toEqual(result.steps.map((s) => s.id));
    expect(build!.artifacts).toEqual([{ path: 'bin/one', ...art }]);
    expect(await queries.job('kept')).toMatchObject({ lastBuild: result.job, lastState: 'succeeded' });
  });

  it('stores a build recorded twice (even at once) exactly once', async () => {
    const result = sampleResult({ name: 'racing' });
    const outcomes = await Promise.all([record(result), record(result), record(result)]);
    expect(outcomes.filter((o) => o === 'stored')).toHaveLength(1);
    expect((await queries.listBuilds({ job: 'racing' })).items).toHaveLength(1);
  });

  it("keeps a job's latest build when an older result arrives late", async () => {
    const newer = sampleResult({ name: 'ordering', state: 'failed', finishedAt: 2_000_000 });
    const older = sampleResult({ name: 'ordering', finishedAt: 1_000_000 });
    await record(newer);
    await record(older);
    expect(await queries.job('ordering')).toMatchObject({ lastBuild: newer.job, lastState: 'failed' });
  });

  it('filters builds by pool, platform, status, client and text, and pages without overlap', async () => {
    const base = 10_000_000;
    const made: BuildResult[] = [];
    for (let i = 0; i < 7; i++) {
      const r = sampleResult({
        name: i % 2 ? 'Filter-Odd' : 'filter-even',
        pool: i < 4 ? 'fpool-a' : 'fpool-b',
        platform: i % 3 ? 'linux/amd64' : 'linux/arm64',
        client: i === 6 ? 'bob' : 'carol',
        state: i === 5 ? 'failed' : 'succeeded',
        startedAt: base + i * 1000 - 10,
        finishedAt: base + i * 1000,
      });
      made.push(r);
      await record(r);
    }
    const ids = (page: { items: { id: BuildId }[] }) => page.items.map((b) => b.id);
    expect(ids(await queries.listBuilds({ pool: 'fpool-a' }))).toEqual(
      made
        .slice(0, 4)
        .map((r) => r.job)
        .reverse(),
    );
    expect(ids(await queries.listBuilds({ q: 'filter', platform: 'linux/arm64' }))).toEqual([made[6]!.job, made[3]!.job, made[0]!.job]);
    expect(ids(await queries.listBuilds({ q: 'FILTER-odd', state: 'failed' }))).toEqual([made[5]!.job]);
    expect(ids(await queries.listBuilds({ client: 'bob' }))).toEqual([made[6]!.job]);
    expect(ids(await queries.listBuilds({ q: made[2]!.job }))).toEqual([made[2]!.job]);
    // LIKE's wildcards in the search are taken literally.
    expect(ids(await queries.listBuilds({ q: 'filter%odd' }))).toEqual([]);
    const first = await queries.listBuilds({ q: 'filter', limit: 3 });
    const second = await queries.listBuilds({ q: 'filter', limit: 3, before: first.next! });
    const third = await queries.listBuilds({ q: 'filter', limit: 3, before: second.next! });
    expect([...ids(first), ...ids(second), ...ids(third)]).toEqual(made.map((r) => r.job).reverse());
    expect(third.next).toBeUndefined();
    // The filter menus: what a plain SELECT DISTINCT gives, read one index probe per value.
    const facets = await new BuildQueries(ds).facets();
    const distinct = async (column: string) =>
      ((await ds.query(`SELECT DISTINCT ${column} AS v FROM builds ORDER BY ${column}`)) as { v: string }[]).map((r) => r.v);
    expect(facets.pools).toEqual(await distinct('pool'));
    expect(facets.pools).toEqual(expect.arrayContaining(['fpool-a', 'fpool-b']));
    expect(facets.platforms).toEqual(await distinct('platform'));
    expect(facets.clients).toEqual(await distinct('client'));
  });

  it('applies retention: the last N per job, failures for D days, tagged builds; then drops unreferenced blobs', async () => {
    const now = 100 * DAY;
    const shared = await putBlob(blobs, 'shared by old and new');
    const oldOnly = await putBlob(blobs, 'only in the oldest build');
    const builds: BuildResult[] = [];
    const states = ['succeeded', 'failed', 'succeeded', 'failed', 'succeeded', 'succeeded'] as const;
    const ages = [30, 20, 10, 2, 1, 0.5];
    for (let i = 0; i < states.length; i++) {
      const r = sampleResult({ name: 'retained', state: states[i], startedAt: now - ages[i]! * DAY - 1, finishedAt: now - ages[i]! * DAY });
      builds.push(r);
      const artifacts =
        i === 0
          ? [
              { path: 'old', ...oldOnly },
              { path: 'shared', ...shared },
            ]
          : [{ path: 'shared', ...shared }];
      await record(r, artifacts);
    }
    // A tagged build is kept whatever its age.
    const tag = await ds.getRepository(TagEntity).save({ name: 'release' });
    await ds.getRepository(BuildTagEntity).insert({ buildId: asBuildId(builds[2]!.job), tagId: tag.id });

    // A saved page for every build; the removed builds' pages must go with them.
    for (const b of builds) {
      await mkdir(dirname(savedPagePath(dir, b.job)), { recursive: true });
      await writeFile(savedPagePath(dir, b.job), 'saved page');
    }
    const report = await applyRetention(ds, blobs, { keepLast: 2, keepFailedDays: 7, orphanGraceMs: -Date.now() }, now, dir);
    const left = (await queries.listBuilds({ job: 'retained' })).items.map((b) => b.id).sort();
    // Kept: the last two (0.5, 1 days), the failure 2 days old, the tagged one. Gone: the 30-day success, the 20-day failure.
    expect(left).toEqual([builds[5]!.job, builds[4]!.job, builds[3]!.job, builds[2]!.job].sort());
    for (const b of builds) expect(existsSync(savedPagePath(dir, b.job)), b.job).toBe(left.map(String).includes(b.job));
    // (Older jobs of this file are over the limit too and go in the same pass.)
    expect(report.buildsRemoved).toBeGreaterThanOrEqual(2);
    expect(await blobs.size(oldOnly.sha256)).toBeUndefined();
    expect(await blobs.size(shared.sha256)).toBe(shared.size);
    expect(report.blobsRemoved).toBeGreaterThanOrEqual(1);
    // Steps and artifacts went with their builds.
    const orphanSteps = await ds.query(`SELECT COUNT(*) AS n FROM steps WHERE build_id = '${builds[0]!.job}'`);
    expect(Number(orphanSteps[0].n)).toBe(0);
  });

  it('leaves a recently written unreferenced blob alone (an ingest may be about to commit it)', async () => {
    const fresh = await putBlob(blobs, 'written a moment ago, row not yet committed');
    await applyRetention(ds, blobs, { keepLast: 1, keepFailedDays: 0, orphanGraceMs: 60_000 });
    expect(await blobs.size(fresh.sha256)).toBe(fresh.size);
  });

  it('verify finds a tampered blob, a missing one and an orphan; a tampered blob is not served', async () => {
    const good = await putBlob(blobs, 'good bytes');
    const tampered = await putBlob(blobs, 'bytes to tamper with');
    const missingBytes = Buffer.from('never written');
    const missing = asSha256(sha256Hex(missingBytes));
    const orphan = await putBlob(blobs, 'nobody refers to me');
    await record(sampleResult({ name: 'verified' }), [
      { path: 'good', ...good },
      { path: 'tampered', ...tampered },
      { path: 'missing', sha256: missing, size: missingBytes.length },
    ]);
    const path = blobs.pathOf(tampered.sha256);
    await chmod(path, 0o644);
    await writeFile(path, 'bytes to tamper with!');
    const report = await verifyStore(ds, blobs);
    expect(report.corrupt.map((c) => c.sha256)).toEqual([tampered.sha256]);
    expect(report.missing).toEqual([missing]);
    expect(report.orphans.map((o) => o.sha256)).toContain(orphan.sha256);
    expect(report.orphans.map((o) => o.sha256)).not.toContain(good.sha256);
    await expect(blobs.openVerified(tampered.sha256)).rejects.toThrow(/refusing to serve/);
    expect((await blobs.openVerified(good.sha256))?.size).toBe(good.size);
  });

  it('keeps token hashes, never tokens; a revoked token stops working', async () => {
    const tokens = new TokenService(ds);
    const { token, id } = await tokens.issue('ci', 'writer');
    expect(await tokens.authenticate(token)).toMatchObject({ user: 'ci', role: 'writer' });
    expect(await tokens.authenticate(`${token}x`)).toBeUndefined();
    const rows = await ds.getRepository(TokenEntity).find();
    expect(rows.map((r) => r.hash)).toContain(hashToken(token));
    const dump = JSON.stringify(await ds.query('SELECT * FROM tokens'));
    expect(dump).not.toContain(token);
    await tokens.revoke(id);
    expect(await tokens.authenticate(token)).toBeUndefined();
  });

  it('loads a tokens file of hashes', async () => {
    const file = join(dir, 'tokens');
    await writeFile(file, `# ops\nops admin sha256:${hashToken('s3cret-admin')}\n`);
    const tokens = new TokenService(ds);
    expect(await tokens.loadFile(file)).toBe(1);
    expect(await tokens.authenticate('s3cret-admin')).toMatchObject({ user: 'ops', role: 'admin' });
    await writeFile(file, 'ops superuser sha256:abc\n');
    await expect(tokens.loadFile(file)).rejects.toThrow(`tokens file ${file}:1:`);
  });

  it('has typed IDs that keep one table’s key out of another’s place', () => {
    const job = 1 as JobKey;
    // @ts-expect-error a job's key is not a build ID
    const wrong: BuildId = job;
    expect(wrong).toBe(1);
  });

  it('leaves no temporary files behind in the blob store', async () => {
    expect(await readdir(join(dir, 'blobs', 'tmp'))).toEqual([]);
  });
});
