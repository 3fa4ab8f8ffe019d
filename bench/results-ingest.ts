/**
 * Results-store ingest throughput: results per second through the real path (results
 * stream -> durable consumer -> 20 artifacts copied from the object store into the
 * blob store and verified -> one database transaction -> ack), on SQLite and on
 * PostgreSQL. The store runs as its own process; the results and their artifacts are
 * published as the cluster publishes them.
 *
 * Each database is measured twice in the same run, the store of this tree and the store
 * of `--baseline` (a git revision, its apps/results-store extracted under tmp/; `none`
 * skips it), one after the other, and the ratio printed: on a machine shared with other
 * work only figures taken side by side compare.
 *
 * `--profile DIR` runs the stores with `node --cpu-prof`, their profiles written to
 * DIR/baseline and DIR/tree (Chrome's DevTools opens them).
 *
 *   npx tsx bench/results-ingest.ts [--results 300] [--artifacts 20] [--bytes 4096] [--db sqlite,postgres] [--baseline ce6d2e4] [--profile DIR]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connectBus, ensureJetStream, putBlob, streams, type Artifact } from '@cairn/contracts';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNats } from '../test/support/nats.js';
import { ClusterStandIn, createDatabase, sampleResult, spawnResultsStore, type DatabaseFlavour } from '../test/support/results-store.js';

const { values } = parseArgs({
  options: {
    results: { type: 'string', default: '300' },
    artifacts: { type: 'string', default: '20' },
    bytes: { type: 'string', default: '4096' },
    db: { type: 'string', default: 'sqlite,postgres' },
    // The last results-store before issue 16's batched ingest.
    baseline: { type: 'string', default: 'ce6d2e4' },
    profile: { type: 'string' },
  },
});
const RESULTS = Number(values.results);
const ARTIFACTS = Number(values.artifacts);
const BYTES = Number(values.bytes);

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** `rev`'s apps/results-store (and the tsconfig it extends) under tmp/, which git ignores. */
async function baselineSources(rev: string): Promise<string> {
  const commit = execFileSync('git', ['rev-parse', '--short', `${rev}^{commit}`], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dir = join(ROOT, 'tmp', 'bench-results-ingest', commit);
  if (!existsSync(join(dir, 'apps/results-store/src/main.ts'))) {
    await mkdir(dir, { recursive: true });
    const archive = execFileSync(
      'git',
      ['archive', commit, 'apps/results-store/src', 'apps/results-store/tsconfig.json', 'apps/results-store/package.json', 'tsconfig.base.json'],
      { cwd: ROOT, maxBuffer: 1 << 28 },
    );
    execFileSync('tar', ['-x', '-C', dir], { input: archive });
    // The dashboard's built script, which the store loads at start (ingest does not use it).
    await cp(join(ROOT, 'apps/results-store/dist/browser'), join(dir, 'apps/results-store/dist/browser'), { recursive: true });
  }
  return dir;
}

interface Measured {
  readonly seconds: number;
}

async function measure(flavour: DatabaseFlavour, sources: string | undefined): Promise<Measured> {
  const nats = await startNats();
  const dir = await mkdtemp(join(tmpdir(), 'cairn-bench-ingest-'));
  const db = await createDatabase(flavour, dir);
  const nc = await connectBus({ servers: nats.url, name: 'bench' });
  try {
    await ensureJetStream(nc);
    const cluster = new ClusterStandIn(nc);
    // Artifacts are stored first, as workers upload them before the result exists.
    const results = [];
    for (let r = 0; r < RESULTS; r++) {
      const artifacts: Artifact[] = [];
      for (let a = 0; a < ARTIFACTS; a++) {
        const bytes = randomBytes(BYTES);
        const { sha256 } = await putBlob(nc, 'artifacts', 'w1', [bytes]);
        artifacts.push({ path: `/out/file-${a}.bin`, size: BYTES, sha256 });
      }
      results.push(sampleResult({ name: `bench-${r % 50}`, artifacts }));
    }
    const env = { CAIRN_NATS: nats.url, CAIRN_RESULTS_DIR: join(dir, 'data'), CAIRN_RESULTS_DB: db.location, CAIRN_LOG_FORMAT: 'text' };
    const profile = values.profile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(values.profile, sources ? 'baseline' : 'tree')}`];
    const store = await spawnResultsStore(env, { ...(sources ? { sources } : {}), nodeArgs: profile });
    try {
      const jsm = await jetstreamManager(nc);
      const started = performance.now();
      await Promise.all(results.map((r) => cluster.result(r)));
      for (;;) {
        const info = await jsm.consumers.info(streams.results.name, 'results-store');
        if (info.delivered.consumer_seq >= RESULTS && info.num_pending === 0 && info.num_ack_pending === 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const seconds = (performance.now() - started) / 1000;
      const stored = (await (await fetch(`${store.url}/metrics`)).text()).match(/cairn_results_ingested_total\{source="cluster",outcome="stored"\} (\d+)/)?.[1];
      if (Number(stored) !== RESULTS) throw new Error(`expected ${RESULTS} stored results, the store reports ${stored}`);
      return { seconds };
    } finally {
      await store.stop();
    }
  } finally {
    await nc.close();
    await db.drop();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const baseline = values.baseline === 'none' ? undefined : { rev: values.baseline!, sources: await baselineSources(values.baseline!) };
const mib = (RESULTS * ARTIFACTS * BYTES) / 1024 / 1024;
const row = (label: string, m: Measured, extra: string) =>
  `| ${label} | ${(RESULTS / m.seconds).toFixed(1)} | ${((RESULTS * ARTIFACTS) / m.seconds).toFixed(0)} | ${(mib / m.seconds).toFixed(1)} | ${m.seconds.toFixed(2)} s |${extra}`;

console.log(`results-store ingest: ${RESULTS} results x ${ARTIFACTS} artifacts of ${BYTES} bytes (each artifact distinct), store in its own process`);
console.log(`| database, store | results/s | artifacts/s | MiB/s | wall time |${baseline ? ' vs baseline |' : ''}`);
console.log(`| --- | --- | --- | --- | --- |${baseline ? ' --- |' : ''}`);
for (const flavour of values.db!.split(',') as DatabaseFlavour[]) {
  const before = baseline ? await measure(flavour, baseline.sources) : undefined;
  const now = await measure(flavour, undefined);
  if (before && baseline) console.log(row(`${flavour}, baseline ${baseline.rev}`, before, ' |'));
  console.log(row(`${flavour}, this tree`, now, before ? ` ${(before.seconds / now.seconds).toFixed(2)}x |` : ''));
}
