/**
 * The charts' rollups on SQLite and PostgreSQL: a seeded history of stored builds is
 * counted per minute and per hour as it is stored (once, even when stored twice), the
 * charts read the counts, rates and percentiles back without touching the builds, and
 * old rollups are pruned.
 */
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FLAVOURS, openTestDatabase, sampleResult, type OpenTestDatabase } from '../../../test/support/results-store.js';
import { recordBuild, recordBuilds } from '../src/ingest/build-recorder.js';
import { ChartData } from '../src/rollups/chart-data.js';
import { binOf, binValue, pruneRollups, quantile, RollupBatch } from '../src/rollups/rollup-metrics.js';
import { chartsPage } from '../src/pages/charts-page.js';

const HOUR = 3600_000;

describe('histogram bins', () => {
  it('put a time within 19% of the middle of its bin, and read percentiles from the bins', () => {
    for (const ms of [1, 7, 120, 1000, 4000, 65_432, 3 * HOUR]) expect(Math.abs(binValue(binOf(ms)) - ms) / ms).toBeLessThan(0.19);
    const bins = new Map<number, number>([
      [binOf(1000), 6],
      [binOf(4000), 4],
    ]);
    expect(quantile(bins, 0.5)).toBe(binValue(binOf(1000)));
    expect(quantile(bins, 0.95)).toBe(binValue(binOf(4000)));
    expect(quantile(new Map(), 0.5)).toBeUndefined();
  });
});

describe.each(FLAVOURS)('the rollups on %s', (flavour) => {
  let database: OpenTestDatabase;
  let ds: DataSource;
  // The middle of a minute, so that every build seeded lands in the same minute and hour.
  const now = Math.floor(Date.now() / HOUR) * HOUR + 30 * 60_000 + 30_000;

  beforeAll(async () => {
    database = await openTestDatabase(flavour, 'cairn-rs-rollups-');
    ({ ds } = database);
    // Pool A: 10 builds of "charted", 7 succeeded; 5 took 1 s and 5 took 4 s; each waited 2 s.
    const builds = Array.from({ length: 10 }, (_, i) =>
      sampleResult({
        name: 'charted',
        pool: 'pool-a',
        state: i < 7 ? 'succeeded' : 'failed',
        submittedAt: now - 20_000,
        startedAt: now - 18_000,
        finishedAt: now - 18_000 + (i % 2 ? 1000 : 4000),
      }),
    );
    await recordBuilds(
      ds,
      builds.slice(0, 6).map((result) => ({ result, source: 'cluster' as const, artifacts: [], storedAt: now })),
    );
    for (const result of builds.slice(6)) await recordBuild(ds, { result, source: 'cluster', artifacts: [], storedAt: now });
    // Stored again (a redelivery): not counted again.
    await recordBuild(ds, { result: builds[0]!, source: 'cluster', artifacts: [], storedAt: now });
    // Pool B: 2 builds of another job, two hours ago (outside the 1 h chart, inside 24 h).
    for (let i = 0; i < 2; i++)
      await recordBuild(ds, {
        result: sampleResult({ name: 'other', pool: 'pool-b', finishedAt: now - 2 * HOUR, startedAt: now - 2 * HOUR - 500, submittedAt: now - 2 * HOUR - 600 }),
        source: 'cluster',
        artifacts: [],
        storedAt: now,
      });
    // Two samples of pool A's queue in this minute: 3 and 5 queued.
    for (const queued of [3, 5]) {
      const batch = new RollupBatch();
      batch.add(now, 'queue', 'pool-a', { total: queued, peak: queued });
      batch.add(now, 'busy', 'pool-a', { total: 1, part: 2 });
      await batch.write(ds);
    }
  });
  afterAll(async () => {
    await database?.close();
  });

  it('charts the last hour by minute from the rollups alone, never the builds', async () => {
    const query = vi.spyOn(ds, 'query');
    const data = await new ChartData(ds).charts('1h', now);
    const sql = query.mock.calls.map(([text]) => String(text));
    query.mockRestore();
    expect(sql.length).toBeGreaterThan(0);
    expect(sql.filter((text) => /\bbuilds\b/.test(text))).toEqual([]);
    const chart = (id: string) => data.charts.find((c) => c.id === id)!;
    // Every build finished in the minute that began 30 s before `now`.
    expect(chart('success-rate').series).toEqual([{ name: 'pool-a', points: [[now - 30_000, 70]], count: 10, part: 7 }]);
    expect(chart('cache-hit').series[0]).toMatchObject({ name: 'pool-a', count: 20, part: 10 });
    const duration = chart('duration').series;
    expect(duration.map((s) => s.name)).toEqual(['charted p50', 'charted p95']);
    expect(duration[0]!.points[0]![1]).toBe(binValue(binOf(1000)));
    expect(duration[1]!.points[0]![1]).toBe(binValue(binOf(4000)));
    expect(chart('wait').series[0]).toMatchObject({ name: 'pool-a p50', count: 10 });
    expect(chart('queue-length').series[0]!.points[0]![1]).toBe(4);
    expect(chart('utilisation').series[0]!.points[0]![1]).toBe(50);
    // Pool B's builds are two hours old: not in this hour.
    expect(chart('success-rate').series.map((s) => s.name)).toEqual(['pool-a']);
  });

  it('charts 24 hours by hour, one pool when asked, and renders every figure into the SVG', async () => {
    const day = await new ChartData(ds).charts('24h', now);
    expect(day.charts.find((c) => c.id === 'success-rate')!.series.map((s) => [s.name, s.count, s.part])).toEqual([
      ['pool-a', 10, 7],
      ['pool-b', 2, 2],
    ]);
    const one = await new ChartData(ds).charts('24h', now, 'pool-b');
    expect(one.charts.find((c) => c.id === 'success-rate')!.series.map((s) => s.name)).toEqual(['pool-b']);
    const svg = chartsPage(day).value;
    expect(svg).toContain('data-chart="success-rate"');
    expect(svg).toMatch(/data-series="pool-a" data-count="10" data-part="7" data-points="\d+:70"/);
  });

  it('prunes minute rollups after their keep and hour rollups after theirs', async () => {
    await pruneRollups(ds, now + 3 * HOUR, HOUR, 30 * 24 * HOUR);
    expect((await new ChartData(ds).charts('1h', now)).charts.find((c) => c.id === 'success-rate')!.series).toEqual([]);
    expect((await new ChartData(ds).charts('24h', now)).charts.find((c) => c.id === 'success-rate')!.series).toHaveLength(2);
  });
});
