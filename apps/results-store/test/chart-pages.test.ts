/**
 * The charts pages are made on a worker thread with its own connection, never on the
 * request thread: on SQLite and PostgreSQL, a range's first request waits for its page;
 * later ones get the last page made at once, even once it is stale, while a new one is
 * made behind them; a page that cannot be made leaves the last one served (and says
 * why), or, for a first request, fails with the range and the database's reason; a
 * worker thread that dies is replaced.
 */
import type { Worker } from 'node:worker_threads';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FLAVOURS, openTestDatabase, type OpenTestDatabase } from '../../../test/support/results-store.js';
import { ChartPages } from '../src/pages/chart-pages.js';
import { RollupBatch } from '../src/rollups/rollup-metrics.js';

/** The success-rate chart's build count of `pool`, from the page's data attributes. */
function builds(page: { body: Buffer }, pool: string): number | undefined {
  const html = page.body.toString('utf8');
  const chart = html.slice(html.indexOf('data-chart="success-rate"'));
  const m = new RegExp(`data-series="${pool}" data-count="(\\d+)"`).exec(chart);
  return m ? Number(m[1]) : undefined;
}

async function addBuilds(ds: DataSource, pool: string, count: number): Promise<void> {
  const batch = new RollupBatch();
  for (let i = 0; i < count; i++) batch.add(Date.now() - 60_000, 'builds', pool, { part: 1 });
  await batch.write(ds);
}

describe.each(FLAVOURS)('the charts pages on %s', (flavour) => {
  let database: OpenTestDatabase;
  let pages: ChartPages;
  const warnings: string[] = [];
  /** How long a page may take to show what the database has: each request after the first asks for a new one. */
  const SOON = { timeout: 20_000, interval: 50 };

  /** The 1 h page, once one counts `n` builds of pool-a. */
  const pageCounting = (n: number) =>
    vi.waitFor(async () => {
      const page = await pages.get('1h');
      expect(builds(page, 'pool-a'), `the last warning: ${warnings.at(-1)}`).toBe(n);
      return page;
    }, SOON);

  beforeAll(async () => {
    database = await openTestDatabase(flavour, 'cairn-rs-chart-pages-');
    await addBuilds(database.ds, 'pool-a', 3);
    // Refreshed as soon as asked: each request after the first finds its page stale.
    pages = new ChartPages({ database: database.db.location, chartRefreshMs: { '1h': 0 } }, { warn: (m: string) => void warnings.push(m) });
  });
  afterAll(async () => {
    await pages?.close();
    await database?.close();
  });

  it('makes a page on its own connection and serves the last one made while the next is made', async () => {
    const query = vi.spyOn(database.ds, 'query');
    const first = await pages.get('1h');
    expect(builds(first, 'pool-a')).toBe(3);
    expect(first.gzip?.length).toBeGreaterThan(0);
    await addBuilds(database.ds, 'pool-a', 2);
    query.mockClear();
    // Stale: answered with the page it has, at once, and a new one is asked for.
    expect(await pages.get('1h')).toBe(first);
    const next = await pageCounting(5);
    expect(builds(next, 'pool-a')).toBe(5);
    // The request thread's connection was not asked for any of it.
    expect(query).not.toHaveBeenCalled();
    query.mockRestore();
    // A range not asked before waits for its own page, and a pool's page has only that pool.
    await addBuilds(database.ds, 'pool-b', 4);
    expect(builds(await pages.get('24h', 'pool-b'), 'pool-b')).toBe(4);
    expect(builds(await pages.get('24h', 'pool-b'), 'pool-a')).toBeUndefined();
  });

  it('keeps serving the last page when a new one cannot be made, and says why', async () => {
    await pageCounting(5);
    await database.ds.query('ALTER TABLE rollups RENAME TO rollups_away');
    try {
      const seen = warnings.length;
      const served: (number | undefined)[] = [];
      // Each request finds the page stale and asks for another, which fails; the last page made is served meanwhile.
      await vi.waitFor(async () => {
        served.push(builds(await pages.get('1h'), 'pool-a'));
        expect(warnings.length).toBeGreaterThan(seen);
      }, SOON);
      served.push(builds(await pages.get('1h'), 'pool-a'));
      expect(new Set(served)).toEqual(new Set([5]));
      expect(warnings[seen]).toMatch(/^charts 1h: a new page could not be made, the one from .* stays: .*rollups/);
      // A range with no page yet has nothing to fall back on: its request fails, naming the range.
      await expect(pages.get('7d')).rejects.toThrow(/^charts of 7d: .*rollups/);
    } finally {
      await database.ds.query('ALTER TABLE rollups_away RENAME TO rollups');
    }
    await addBuilds(database.ds, 'pool-a', 1);
    await pageCounting(6);
  });

  it('replaces a worker thread that died', async () => {
    await pages.get('1h');
    const worker = (pages as unknown as { worker?: Worker }).worker;
    expect(worker).toBeDefined();
    await worker!.terminate();
    await addBuilds(database.ds, 'pool-a', 1);
    await pageCounting(7);
    expect((pages as unknown as { worker?: Worker }).worker).not.toBe(worker);
  });
});

describe('a charts page of a database that cannot be opened', () => {
  it('fails with the range and the reason', async () => {
    const pages = new ChartPages({ database: '/nonexistent/cairn/results.sqlite' });
    try {
      await expect(pages.get('30d', 'linux-x86_64')).rejects.toThrow(/^charts of 30d of pool linux-x86_64: .*(unable to open|does not exist|directory)/i);
    } finally {
      await pages.close();
    }
  });
});
