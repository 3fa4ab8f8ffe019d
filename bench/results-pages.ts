/**
 * Results-store page latency under load: p50/p99 of the build list (unfiltered and
 * filtered), the job list and build pages, with 100,000 builds in the database, at a
 * fixed 200 requests/s from this process (autocannon) against the store running as its
 * own process on loopback. Target: p99 under 50 ms.
 *
 * Build pages are measured twice: on first view (the seeded builds were written straight
 * into the database, so none has a pre-rendered page yet) and pre-rendered, as builds
 * stored through ingest are: a random 20% of the builds are viewed once, the store is
 * restarted (its memory cache gone), then random ones of those are requested.
 *
 *   npx tsx bench/results-pages.ts [--builds 100000] [--rate 200] [--seconds 15] [--db sqlite,postgres]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { startNats } from '../test/support/nats.js';
import { createDatabase, spawnResultsStore, type DatabaseFlavour } from '../test/support/results-store.js';
import { migrate, seed, STEPS, JOBS } from './results-seed.js';

const { values } = parseArgs({
  options: {
    builds: { type: 'string', default: '100000' },
    prerendered: { type: 'string', default: '0.2' },
    rate: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '15' },
    db: { type: 'string', default: 'sqlite,postgres' },
  },
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
  console.log(`| ${title} | ${result.latency.p50} ms | ${result.latency.p99} ms | ${result.latency.max} ms | ${(result.requests.total / SECONDS).toFixed(0)} | ${bad} | ${target} |`);
}

for (const flavour of values.db!.split(',') as DatabaseFlavour[]) {
  const nats = await startNats();
  const dir = await mkdtemp(join(tmpdir(), 'cairn-bench-pages-'));
  const db = await createDatabase(flavour, dir);
  // A fixed public address: the pre-rendered pages' commands name it, and the restarted store listens on another port.
  const env = { CAIRN_NATS: nats.url, CAIRN_RESULTS_DIR: join(dir, 'data'), CAIRN_RESULTS_PUBLIC_URL: 'http://cairn.example', CAIRN_RESULTS_DB: db.location, CAIRN_RESULTS_ADMIN_TIMEOUT_MS: '200' };
  try {
    await migrate(env);
    const seeding = performance.now();
    const ids = await seed(flavour, db.location, BUILDS);
    console.log(`\n${flavour}: seeded ${ids.length} builds (${ids.length * STEPS} steps, ${ids.length * 2} artifacts, ${JOBS} jobs) in ${((performance.now() - seeding) / 1000).toFixed(1)} s`);
    // CAIRN_BENCH_PROFILE=<dir> writes a CPU profile of the store for the whole run.
    const profile = process.env.CAIRN_BENCH_PROFILE;
    const spawnStore = () => spawnResultsStore({ ...env, CAIRN_LOG_FORMAT: 'text' }, profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profile}`] } : {});
    const shuffled = [...ids].sort(() => Math.random() - 0.5);
    const kept = shuffled.slice(0, Math.round(ids.length * Number(values.prerendered)));
    const fresh = shuffled.slice(kept.length);
    const pick = (from: string[]) => () => `/builds/${from[Math.floor(Math.random() * from.length)]}`;
    let store = await spawnStore();
    try {
      // Warm the store's caches and the database's pages, as a running dashboard would be.
      for (let i = 0; i < 50; i++) await fetch(`${store.url}/builds/${fresh[Math.floor(Math.random() * fresh.length)]}`);
      await fetch(`${store.url}/builds`);
      const pages: [string, string | (() => string)][] = [
        ['build list `/builds`', '/builds'],
        ['filtered `/builds?pool=linux-arm64&state=failed&q=job-01`', '/builds?pool=linux-arm64&state=failed&q=job-01'],
        ['job list `/jobs`', '/jobs'],
        ['build page `/builds/<random>`, first view', pick(fresh)],
      ];
      console.log('one request at a time (service time):');
      console.log('| page | p50 | p99 |');
      console.log('| --- | --- | --- |');
      for (const [title, path] of pages) await serial(store.url, title, path);
      console.log(`${RATE} requests/s for ${SECONDS} s each, 10 connections, from this process to the store's process on loopback`);
      console.log('| page | p50 | p99 | max | req/s | errors | p99 < 50 ms |');
      console.log('| --- | --- | --- | --- | --- | --- | --- |');
      for (const [title, path] of pages) await load(store.url, title, path);

      const rendering = performance.now();
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < kept.length; i = next++) {
          const res = await fetch(`${store.url}/builds/${kept[i]}`);
          await res.arrayBuffer();
          if (res.status !== 200) throw new Error(`pre-rendering ${kept[i]}: ${res.status}`);
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      console.log(`pre-rendered ${kept.length} build pages in ${((performance.now() - rendering) / 1000).toFixed(1)} s; restarting the store`);
      await store.stop();
      store = await spawnStore();
      const title = 'build page `/builds/<random>`, pre-rendered';
      await serial(store.url, title, pick(kept));
      await load(store.url, title, pick(kept));
    } finally {
      await store.stop();
    }
  } finally {
    await db.drop();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
