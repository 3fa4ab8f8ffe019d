/**
 * Results-store page latency under load: p50/p99 of the build list (unfiltered and
 * filtered), the job list, build pages, a worker's and a pool's page (the scheduler's
 * view from a stand-in on the bus) and the charts (from the rollups of the seeded
 * history, made on the store's chart thread; each range's first page is timed too), with 100,000 builds in the database, at a
 * fixed 200 requests/s from this process (autocannon) against the store running as its
 * own process on loopback. Target: p99 under 50 ms.
 *
 * The seeded builds are written straight into the database, as builds stored before
 * pages were pre-rendered: none has a saved page. Build pages are measured three times:
 *  1. first views with the page backfill switched off (every request renders);
 *  2. first views while the backfill runs (restarted store, pages directory emptied),
 *     with the build list alongside, to see what the background work costs readers;
 *  3. after the backfill has finished (restarted again, its memory cache gone): every
 *     page is read from its saved copy.
 *
 *   npx tsx bench/results-pages.ts [--builds 100000] [--rate 200] [--seconds 15] [--db sqlite,postgres] [--no-backfill] [--settle]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { startNats } from '../test/support/nats.js';
import { connectBus } from '@cairn/contracts';
import { createDatabase, schedulerStandIn, spawnResultsStore, workerInfo, type DatabaseFlavour } from '../test/support/results-store.js';
import { migrate, seed, seedRollups, settle, STEPS, JOBS } from './results-seed.js';

const { values } = parseArgs({
  options: {
    builds: { type: 'string', default: '100000' },
    rate: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '15' },
    db: { type: 'string', default: 'sqlite,postgres' },
    // --no-backfill: the first phase only (every page rendered), without the backfill's two.
    backfill: { type: 'boolean', default: true },
    // --settle: VACUUM and checkpoint the seeded database before measuring (results-seed.ts settle).
    settle: { type: 'boolean', default: false },
  },
  allowNegative: true,
});
const BUILDS = Number(values.builds);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);

/** One request at a time: what a page costs the store when nothing else competes. */
async function serial(url: string, title: string, path: string | (() => string)): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const started = performance.now();
    const res = await fetch(url + (typeof path === 'string' ? path : path()), { headers: { 'accept-encoding': 'gzip' } });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${title}: ${res.status}`);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  console.log(`| ${title} | ${times[100]!.toFixed(1)} ms | ${times[197]!.toFixed(1)} ms |`);
}

async function load(url: string, title: string, path: string | (() => string)): Promise<void> {
  const result = await autocannon({
    url,
    connections: 10,
    overallRate: RATE,
    duration: SECONDS,
    headers: { 'accept-encoding': 'gzip' },
    requests: [typeof path === 'string' ? { path } : { setupRequest: (req: Record<string, unknown>) => ({ ...req, path: path() }) }],
  });
  const bad = result.non2xx + result.errors + result.timeouts;
  const target = result.latency.p99 < 50 ? 'ok' : 'OVER';
  console.log(
    `| ${title} | ${result.latency.p50} ms | ${result.latency.p99} ms | ${result.latency.max} ms | ${(result.requests.total / SECONDS).toFixed(0)} | ${bad} | ${target} |`,
  );
}

/** The page backfill's figures from the store's /metrics. */
async function backfillMetrics(url: string): Promise<{ remaining: number; running: boolean; saved: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return {
    remaining: value(/^cairn_results_page_backfill_remaining (\S+)$/m),
    running: value(/^cairn_results_page_backfill_running (\S+)$/m) === 1,
    saved: value(/^cairn_results_page_backfill_builds_total\{outcome="saved"\} (\S+)$/m) || 0,
  };
}

function header(): void {
  console.log('| page | p50 | p99 | max | req/s | errors | p99 < 50 ms |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
}

for (const flavour of values.db!.split(',') as DatabaseFlavour[]) {
  const nats = await startNats();
  const dir = await mkdtemp(join(tmpdir(), 'cairn-bench-pages-'));
  const db = await createDatabase(flavour, dir);
  const dataDir = join(dir, 'data');
  // A fixed public address: the saved pages' commands name it, and each restarted store listens on another port.
  const env = {
    CAIRN_NATS: nats.url,
    CAIRN_RESULTS_DIR: dataDir,
    CAIRN_RESULTS_PUBLIC_URL: 'http://cairn.example',
    CAIRN_RESULTS_DB: db.location,
    CAIRN_RESULTS_ADMIN_TIMEOUT_MS: '200',
  };
  // The scheduler's view of the seeded workers (w0-w29, as the seed names them) and pools.
  const bus = await connectBus({ servers: nats.url, name: 'bench-scheduler' });
  const now = Date.now();
  const stopScheduler = schedulerStandIn(bus, {
    pools: ['linux-x86_64', 'linux-arm64', 'macos-arm64', 'windows-x86_64'].map((pool) => ({ pool, paused: false, queued: 3, running: 5, workers: 30 })),
    workers: Array.from({ length: 30 }, (_, i) => workerInfo({ worker: `w${i}`, hints: 10, lastSeen: now })),
  });
  try {
    await migrate(env);
    const seeding = performance.now();
    const ids = await seed(flavour, db.location, BUILDS);
    const rollups = await seedRollups(flavour, db.location, BUILDS);
    if (values.settle) await settle(flavour, db.location);
    console.log(
      `\n${flavour}: seeded ${ids.length} builds (${ids.length * STEPS} steps, ${ids.length * 2} artifacts, ${JOBS} jobs, ${rollups} rollup rows) in ${((performance.now() - seeding) / 1000).toFixed(1)} s`,
    );
    // CAIRN_BENCH_PROFILE=<dir> writes a CPU profile of the store for the whole run.
    const profile = process.env.CAIRN_BENCH_PROFILE;
    const spawnStore = (extra: Record<string, string> = {}) =>
      spawnResultsStore({ ...env, CAIRN_LOG_FORMAT: 'text', ...extra }, profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profile}`] } : {});
    const pick = () => `/builds/${ids[Math.floor(Math.random() * ids.length)]}`;

    // 1. Every request renders: the backfill is off.
    let store = await spawnStore({ CAIRN_RESULTS_BACKFILL_BATCH: '0' });
    try {
      // Warm the store's caches and the database's pages, as a running dashboard would be.
      for (let i = 0; i < 50; i++) await fetch(`${store.url}${pick()}`);
      await fetch(`${store.url}/builds`);
      console.log('charts, first (uncached) render:');
      for (const range of ['1h', '24h', '7d', '30d']) {
        const started = performance.now();
        const res = await fetch(`${store.url}/charts?range=${range}`);
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`/charts?range=${range}: ${res.status}`);
        console.log(`| \`/charts?range=${range}\` | ${(performance.now() - started).toFixed(1)} ms |`);
      }
      const pages: [string, string | (() => string)][] = [
        ['build list `/builds`', '/builds'],
        ['filtered `/builds?pool=linux-arm64&state=failed&q=job-01`', '/builds?pool=linux-arm64&state=failed&q=job-01'],
        ['job list `/jobs`', '/jobs'],
        ['build page `/builds/<random>`, first view, no backfill', pick],
        ['worker page `/workers/w<random>`', () => `/workers/w${Math.floor(Math.random() * 30)}`],
        ['pool page `/pools/linux-x86_64`', '/pools/linux-x86_64'],
        ['charts `/charts?range=24h` (made on a worker thread, every 30 s at most)', '/charts?range=24h'],
        ['charts `/charts?range=30d` (made on a worker thread, every 60 s at most)', '/charts?range=30d'],
      ];
      console.log('one request at a time (service time):');
      console.log('| page | p50 | p99 |');
      console.log('| --- | --- | --- |');
      for (const [title, path] of pages) await serial(store.url, title, path);
      console.log(`${RATE} requests/s for ${SECONDS} s each, 10 connections, from this process to the store's process on loopback`);
      header();
      for (const [title, path] of pages) await load(store.url, title, path);
    } finally {
      await store.stop();
    }

    if (!values.backfill) continue;
    // 2. The same first views while the backfill saves every page, newest first.
    await rm(join(dataDir, 'pages'), { recursive: true, force: true });
    const backfilling = performance.now();
    store = await spawnStore();
    try {
      header();
      const before = await backfillMetrics(store.url);
      const loading = performance.now();
      await load(store.url, 'build page `/builds/<random>`, first view, during the backfill', pick);
      await load(store.url, 'build list `/builds`, during the backfill', '/builds');
      const during = await backfillMetrics(store.url);
      const loaded = (performance.now() - loading) / 1000;
      console.log(
        `backfill: ${before.saved} pages saved while the store started, ${during.saved - before.saved} in ${loaded.toFixed(0)} s under load (${((during.saved - before.saved) / loaded).toFixed(0)}/s), ${during.remaining} to go`,
      );
      let last = during;
      while (last.running || last.remaining > 0) {
        await new Promise((r) => setTimeout(r, 1000));
        last = await backfillMetrics(store.url);
      }
      const idle = (performance.now() - loading) / 1000 - loaded;
      console.log(
        `backfill done: ${last.saved} pages saved in ${((performance.now() - backfilling) / 1000).toFixed(0)} s; ${((last.saved - during.saved) / idle).toFixed(0)} pages/s without readers`,
      );
    } finally {
      await store.stop();
    }

    // 3. After the backfill, from a restarted store: every page read from its saved copy.
    store = await spawnStore();
    try {
      const title = 'build page `/builds/<random>`, after the backfill (saved page)';
      await serial(store.url, title, pick);
      header();
      await load(store.url, title, pick);
    } finally {
      await store.stop();
    }
  } finally {
    stopScheduler();
    await bus.close();
    await db.drop();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
