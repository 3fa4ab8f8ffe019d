/**
 * How long a restarting scheduler takes to read its state back, with the finished jobs a
 * busy cluster keeps (24 h by default: at 1 job/s that is 86,400 records).
 *
 *   npx tsx bench/scheduler-restore.ts [--jobs 50000]
 *
 * A private nats-server (JetStream, file storage); the jobs bucket filled with job-sized
 * records (a finished job with its outcome and steps, ~1.3 KB). Baseline in the same run:
 * the previous release's read (list the keys, get each one). Then the read the scheduler
 * does now (readBucket: one watcher, the last value per key), and the whole scheduler
 * process from start to ready (restore included) on that bucket.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { KV } from '@nats-io/kv';
import { buckets, connectBus, durablePublish, openBucket } from '@cairn/contracts';
import { readBucket } from '../apps/scheduler/src/bucket-reader.js';
import { startNats } from '../test/support/nats.js';
import { buildScheduler, startScheduler, table } from './scheduler-support.js';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '50000' }, 'no-build': { type: 'boolean', default: false } } });
const JOBS = Number(values.jobs);
const command = `npx tsx bench/scheduler-restore.ts ${process.argv.slice(2).join(' ')}`.trim();

function record(i: number) {
  const id = `j-bench${String(i).padStart(8, '0')}`;
  const steps = Array.from({ length: 6 }, (_, s) => ({
    stage: 'main',
    op: s === 0 ? 'from' : 'run',
    id: `${'ab'.repeat(32)}`,
    cached: s % 2 === 0,
    ms: 120 + s,
  }));
  return {
    id,
    client: `client-${i % 20}`,
    pool: 'linux-x86_64',
    name: `job-${i % 500}`,
    spec: '((from busybox@sha256:' + 'c'.repeat(64) + ') (run (shell "make -j4 && make test")))',
    urgent: false,
    secrets: [],
    outputs: ['/out/app'],
    timeoutSeconds: 3600,
    cacheHint: `hint-${i % 300}`,
    steps: 6,
    state: 'succeeded',
    attempts: 1,
    submittedAt: 1_790_000_000_000 + i,
    queuedAt: 1_790_000_000_000 + i,
    worker: `w${i % 200}`,
    lease: 'l'.repeat(12),
    accepted: true,
    assignedAt: 1_790_000_000_100 + i,
    startedAt: 1_790_000_000_200 + i,
    finishedAt: 1_790_000_060_000 + i,
    outcome: {
      state: 'succeeded',
      steps,
      artifacts: [{ path: '/out/app', size: 12345, sha256: 'd'.repeat(64) }],
      platform: 'linux-x86_64',
      startedAt: 1,
      finishedAt: 2,
    },
    resultPublished: true,
    idempotencyKey: `key-${i}`,
  };
}

/** The previous release's read: every key listed, then each value fetched. */
async function readKeyByKey(kv: KV): Promise<number> {
  let n = 0;
  for await (const key of await kv.keys()) {
    const e = await kv.get(key);
    if (e && e.operation === 'PUT') {
      e.json();
      n++;
    }
  }
  return n;
}

if (!values['no-build']) buildScheduler();
const nats = await startNats();
const nc = await connectBus({ servers: nats.url, name: 'bench-restore' });
try {
  const kv = await openBucket(nc, buckets.jobs);
  const t0 = performance.now();
  const inFlight = new Set<Promise<unknown>>();
  for (let i = 0; i < JOBS; i++) {
    const r = record(i);
    const p = durablePublish(nc, `$KV.${buckets.jobs}.${r.id}`, JSON.stringify(r)).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 500) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const fillS = (performance.now() - t0) / 1000;
  const bytes = (await kv.status()).size;

  const t1 = performance.now();
  const old = await readKeyByKey(kv);
  const oldS = (performance.now() - t1) / 1000;
  const t2 = performance.now();
  const now = (await readBucket(kv, buckets.jobs)).length;
  const newS = (performance.now() - t2) / 1000;
  if (old !== JOBS || now !== JOBS) throw new Error(`read ${old} (key by key) and ${now} (watcher) records, expected ${JOBS}`);

  const dir = await mkdtemp(join(tmpdir(), 'cairn-bench-restore-'));
  const t3 = performance.now();
  const scheduler = await startScheduler(nats.url, dir);
  const startS = (performance.now() - t3) / 1000;
  await scheduler.stop();

  console.log(`${command}\n${JOBS.toLocaleString('en-US')} job records, ${(bytes / 1e6).toFixed(1)} MB in the bucket (filled in ${fillS.toFixed(1)} s)\n`);
  table(
    ['read of the jobs bucket', 'time', 'records/s', 'ratio to baseline'],
    [
      ['baseline: keys listed, then one get per key (previous release)', `${oldS.toFixed(2)} s`, Math.round(old / oldS).toLocaleString('en-US'), '1.00'],
      ['readBucket: one watcher, last value per key', `${newS.toFixed(2)} s`, Math.round(now / newS).toLocaleString('en-US'), (newS / oldS).toFixed(2)],
      ['scheduler process: start to ready, restore included', `${startS.toFixed(2)} s`, '', ''],
    ],
  );
} finally {
  await nc.close();
  await nats.stop();
}
