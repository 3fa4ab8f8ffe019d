/**
 * A scheduled pass of the base-image-builder over a 50-image matrix whose inputs are all
 * unchanged (issue 13). Target: 0 jobs submitted, under 5 s.
 *
 *   npx tsx bench/base-images.ts [--images 50] [--passes 5]
 *
 * Processes: a private nats-server with JetStream (test/support/nats.ts) and this one,
 * which runs the service's own Rebuilder (apps/base-image-builder/src/rebuilder.ts) over
 * the KV bucket as the service does. The matrix: one busybox-static bootstrap image and
 * a tree of children (each image's parent is an earlier one). Every record is stored as
 * the service leaves it after publishing the image with its inputs of now, so a pass
 * finds nothing to do; a pass that submitted a job would fail here (no spec-compiler
 * answers), and the jobs counter says so. Wall time per pass: reading every record from
 * KV, the inputs digests and the decision.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { connectBus } from '@cairn/contracts';
import { BaseImageMetrics } from '../apps/base-image-builder/src/base-image-metrics.js';
import { ClusterJobs } from '../apps/base-image-builder/src/cluster-jobs.js';
import { DEFAULT_POLICY } from '../apps/base-image-builder/src/core/rebuild-plan.js';
import { ImageRecords } from '../apps/base-image-builder/src/image-records.js';
import { inputsDigest, sha256, specDigests } from '../apps/base-image-builder/src/matrix/inputs-digest.js';
import { loadMatrix } from '../apps/base-image-builder/src/matrix/matrix.js';
import { Rebuilder } from '../apps/base-image-builder/src/rebuilder.js';
import { RegistryPublisher } from '../apps/base-image-builder/src/registry-publisher.js';
import { startNats } from '../test/support/nats.js';

const { values } = parseArgs({ options: { images: { type: 'string', default: '50' }, passes: { type: 'string', default: '5' } } });
const count = Number(values.images);
const passes = Number(values.passes);

const dir = await mkdtemp(join(tmpdir(), 'cairn-bench-images-'));
const nats = await startNats();
const nc = await connectBus({ servers: nats.url, name: 'bench-base-images' });
try {
  // The matrix: img0 from busybox-static, img<i> from img<floor((i-1)/3)> (a tree three wide).
  const entries = ['  - { name: "img0:1", bootstrap: { kind: busybox-static }, spec: img0.spec }'];
  await writeFile(join(dir, 'img0.spec'), '((from bootstrap) (run (shell true)))');
  for (let i = 1; i < count; i++) {
    const parent = `img${Math.floor((i - 1) / 3)}:1`;
    entries.push(`  - { name: "img${i}:1", parent: "${parent}", spec: img${i}.spec }`);
    await writeFile(join(dir, `img${i}.spec`), `((from ${parent}) (run (shell "echo ${i} > /etc/layer")))`);
  }
  await writeFile(join(dir, 'matrix.yaml'), `defaults: { pools: [linux-x86_64], schedule: "0 3 * * 1" }\nimages:\n${entries.join('\n')}\n`);
  const matrix = await loadMatrix(dir);
  const records = await ImageRecords.open(nc);

  // Steady state: each image published with the inputs a pass computes now.
  const digests = specDigests(matrix);
  const published = new Map<string, string>();
  for (const image of matrix.images) {
    const parentDigest = image.parent === undefined ? undefined : published.get(image.parent)!;
    const inputs = inputsDigest({ specDigest: digests.get(image.name)!, ...(parentDigest === undefined ? {} : { parentDigest }) });
    const digest = sha256(image.name);
    published.set(image.name, digest);
    const current = { digest, inputs, at: Date.now() };
    await records.update(image.name, () => ({ name: image.name, current, history: [current] }));
  }

  const registry = new Registry();
  const metrics = new BaseImageMetrics(registry);
  const rebuilder = new Rebuilder(matrix, records, new ClusterJobs(nc), new RegistryPublisher('http://127.0.0.1:1'), metrics, {
    policy: DEFAULT_POLICY,
    replica: 'bench',
    claimTtlMs: 60_000,
    retentionMs: 30 * 86_400_000,
    schedules: false,
    log: (m) => console.log(`  service: ${m}`),
  });
  const times: number[] = [];
  for (let i = 0; i < passes; i++) {
    const started = performance.now();
    await rebuilder.pass();
    times.push(performance.now() - started);
  }
  const jobs = (await metrics.jobs.get()).values.reduce((sum, v) => sum + v.value, 0);
  const unchanged = (await rebuilder.status()).filter((s) => s.why === 'inputs unchanged').length;
  rebuilder.stop();
  const sorted = [...times].sort((a, b) => a - b);
  console.log(`base images: a scheduled pass over ${count} images with unchanged inputs, ${passes} passes`);
  console.log(
    `  wall time per pass: first ${times[0]!.toFixed(1)} ms, median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms (target: under 5000 ms)`,
  );
  console.log(`  jobs submitted: ${jobs} (target: 0); images found unchanged: ${unchanged} of ${count}`);
  if (jobs !== 0 || unchanged !== count) process.exitCode = 1;
} finally {
  await nc.close();
  await nats.stop();
  await rm(dir, { recursive: true, force: true });
}
