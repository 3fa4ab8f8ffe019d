/**
 * Results-store ingest throughput: results per second through the real path (results
 * stream -> durable consumer -> 20 artifacts copied from the object store into the
 * blob store and verified -> one database transaction -> ack), on SQLite and on
 * PostgreSQL. The store runs as its own process; the results and their artifacts are
 * published as the cluster publishes them.
 *
 *   npx tsx bench/results-ingest.ts [--results 300] [--artifacts 20] [--bytes 4096] [--db sqlite,postgres]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectBus, ensureJetStream, objectStores, openObjectStore, streams, type Artifact } from '@cairn/contracts';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNats } from '../test/support/nats.js';
import { ClusterStandIn, createDatabase, sampleResult, sha256Hex, spawnResultsStore, type DatabaseFlavour } from '../test/support/results-store.js';

const { values } = parseArgs({
  options: {
    results: { type: 'string', default: '300' },
    artifacts: { type: 'string', default: '20' },
    bytes: { type: 'string', default: '4096' },
    db: { type: 'string', default: 'sqlite,postgres' },
  },
});
const RESULTS = Number(values.results);
const ARTIFACTS = Number(values.artifacts);
const BYTES = Number(values.bytes);

console.log(`results-store ingest: ${RESULTS} results x ${ARTIFACTS} artifacts of ${BYTES} bytes (each artifact distinct), store in its own process`);
console.log('| database | results/s | artifacts/s | MiB/s | wall time |');
console.log('| --- | --- | --- | --- | --- |');

for (const flavour of values.db!.split(',') as DatabaseFlavour[]) {
  const nats = await startNats();
  const dir = await mkdtemp(join(tmpdir(), 'cairn-bench-ingest-'));
  const db = await createDatabase(flavour, dir);
  const nc = await connectBus({ servers: nats.url, name: 'bench' });
  try {
    await ensureJetStream(nc);
    const cluster = new ClusterStandIn(nc);
    // Artifacts go to the object store first, as workers upload them before the result exists.
    const objects = await openObjectStore(nc, objectStores.artifacts);
    const results = [];
    for (let r = 0; r < RESULTS; r++) {
      const artifacts: Artifact[] = [];
      for (let a = 0; a < ARTIFACTS; a++) {
        const bytes = randomBytes(BYTES);
        const sha256 = sha256Hex(bytes);
        await objects.putBlob({ name: `sha256:${sha256}` }, bytes);
        artifacts.push({ path: `/out/file-${a}.bin`, size: BYTES, sha256 });
      }
      results.push(sampleResult({ name: `bench-${r % 50}`, artifacts }));
    }
    const store = await spawnResultsStore({ CAIRN_NATS: nats.url, CAIRN_RESULTS_DIR: join(dir, 'data'), CAIRN_RESULTS_DB: db.location, CAIRN_LOG_FORMAT: 'text' });
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
      const mib = (RESULTS * ARTIFACTS * BYTES) / 1024 / 1024;
      console.log(`| ${flavour} | ${(RESULTS / seconds).toFixed(1)} | ${((RESULTS * ARTIFACTS) / seconds).toFixed(0)} | ${(mib / seconds).toFixed(1)} | ${seconds.toFixed(2)} s |`);
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
