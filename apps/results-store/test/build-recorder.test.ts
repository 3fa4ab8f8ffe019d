import type { BuildResult } from '@cairn/contracts';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAVOURS, openTestDatabase, sampleResult, type OpenTestDatabase } from '../../../test/support/results-store.js';
import { BuildEntity } from '../src/db/build.entity.js';
import { JobEntity } from '../src/db/job.entity.js';
import { recordBuild, recordBuilds, writeBuilds, type BuildToRecord } from '../src/ingest/build-recorder.js';
import { asBuildId } from '../src/ids.js';

const toRecord = (result: BuildResult, storedAt = 7_000_000): BuildToRecord => ({ result, source: 'cluster', artifacts: [], storedAt });

describe.each(FLAVOURS)('recording a batch of builds on %s', (flavour) => {
  let database: OpenTestDatabase;
  let ds: DataSource;

  // One transaction for the batch, as recordBuilds opens it, without its build-by-build retry hiding a failure.
  const writeBatch = (builds: BuildToRecord[]) => ds.transaction((em) => writeBuilds(em, builds));
  const job = (name: string) => ds.getRepository(JobEntity).findOneByOrFail({ name });

  beforeAll(async () => {
    database = await openTestDatabase(flavour, 'cairn-rs-recorder-');
    ds = database.ds;
  });
  afterAll(async () => {
    await database?.close();
  });

  it("sets each job's latest build in one batch, and a job with a later build is not overwritten", async () => {
    const later = sampleResult({ name: 'has-later', state: 'failed', pool: 'p-later', finishedAt: 5_000_000 });
    const earlier = sampleResult({ name: 'has-earlier', finishedAt: 1_000_000 });
    expect(await recordBuild(ds, toRecord(later))).toBe('stored');
    expect(await recordBuild(ds, toRecord(earlier))).toBe('stored');

    const lateArrival = sampleResult({ name: 'has-later', state: 'succeeded', pool: 'p-old', finishedAt: 4_000_000 });
    const newer = sampleResult({ name: 'has-earlier', state: 'failed', pool: 'p-new', finishedAt: 3_000_000 });
    // A new job twice, its later build first; and a tie on another, where the last recorded wins.
    const freshLater = sampleResult({ name: 'fresh', state: 'cancelled', pool: 'p-fresh', finishedAt: 2_500_000 });
    const freshEarlier = sampleResult({ name: 'fresh', finishedAt: 2_000_000 });
    const tieFirst = sampleResult({ name: 'tie', finishedAt: 6_000_000 });
    const tieSecond = sampleResult({ name: 'tie', state: 'failed', finishedAt: 6_000_000 });
    const outcomes = await writeBatch([
      toRecord(lateArrival),
      toRecord(freshLater, 8_000_000),
      toRecord(newer),
      toRecord(freshEarlier, 9_000_000),
      toRecord(tieFirst),
      toRecord(tieSecond),
      toRecord(newer),
    ]);
    expect(outcomes).toEqual(['stored', 'stored', 'stored', 'stored', 'stored', 'stored', 'duplicate']);

    expect(await job('has-later')).toMatchObject({ lastBuildId: later.job, lastState: 'failed', lastFinishedAt: 5_000_000, lastPool: 'p-later' });
    expect(await job('has-earlier')).toMatchObject({ lastBuildId: newer.job, lastState: 'failed', lastFinishedAt: 3_000_000, lastPool: 'p-new' });
    expect(await job('fresh')).toMatchObject({ lastBuildId: freshLater.job, lastState: 'cancelled', lastFinishedAt: 2_500_000, createdAt: 8_000_000 });
    expect(await job('tie')).toMatchObject({ lastBuildId: tieSecond.job, lastState: 'failed' });
    // The late build is stored all the same, under its job.
    const stored = await ds.getRepository(BuildEntity).findOneByOrFail({ id: asBuildId(lateArrival.job) });
    expect(stored.jobId).toBe((await job('has-later')).id);
  });

  it('finds and creates the jobs of a batch larger than one statement takes, each build under its own job', async () => {
    await recordBuild(ds, toRecord(sampleResult({ name: 'many-0', finishedAt: 9_999_999 })));
    const results = Array.from({ length: 450 }, (_, i) => sampleResult({ name: `many-${i}`, pool: `pool-${i}`, finishedAt: 1_000_000 + i }));
    const outcomes = await recordBuilds(
      ds,
      results.map((r) => toRecord(r)),
    );
    expect(outcomes.every((o) => o.status === 'fulfilled' && o.value === 'stored')).toBe(true);

    const jobs = new Map((await ds.getRepository(JobEntity).find()).map((j) => [j.id, j]));
    const builds = await ds.getRepository(BuildEntity).findBy({ pool: results[1]!.pool });
    expect(builds.map((b) => jobs.get(b.jobId)?.name)).toEqual(['many-1']);
    for (const [i, r] of results.entries()) {
      const j = [...jobs.values()].find((x) => x.name === r.name)!;
      if (i === 0) expect(j.lastFinishedAt).toBe(9_999_999);
      else expect(j).toMatchObject({ lastBuildId: r.job, lastPool: `pool-${i}`, lastFinishedAt: 1_000_000 + i });
    }
  });
});
