import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { connectBus, durablePublish, newTraceId, streams, subjects } from '@cairn/contracts';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import {
  ClusterStandIn,
  FLAVOURS,
  sampleResult,
  sha256Hex,
  startResultsStore,
  stepFinished,
  stepStarted,
  type ResultsStoreUnderTest,
} from '../../../test/support/results-store.js';
import { In } from 'typeorm';
import { BuildEntity } from '../src/db/build.entity.js';
import { Ingest } from '../src/ingest/ingest.js';
import { BuildQueries } from '../src/queries/build-queries.js';
import { asBuildId, asSha256 } from '../src/ids.js';
import { decodeLogIndex } from '../src/log-index.js';

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  return out;
}

describe.each(FLAVOURS)('results from the stream, on %s', (flavour) => {
  let nats: RunningNats;
  let rs: ResultsStoreUnderTest;
  let nc: NatsConnection;
  let cluster: ClusterStandIn;
  let queries: BuildQueries;

  beforeAll(async () => {
    nats = await startNats();
    rs = await startResultsStore({ natsUrl: nats.url, database: flavour });
    nc = await connectBus({ servers: nats.url, name: 'test-cluster' });
    cluster = new ClusterStandIn(nc);
    queries = new BuildQueries(rs.store.ds);
  });
  afterAll(async () => {
    await nc?.close();
    await rs?.close();
    await nats?.stop();
  });

  it('stores a result with its artifacts and its log, the artifacts copied by SHA-256', async () => {
    const bin = new Uint8Array(300_000).map((_, i) => (i * 31) % 251);
    const artifacts = [await cluster.artifact('/usr/local/bin/hello', bin), await cluster.artifact('/etc/motd', Buffer.from('hi\n'))];
    const result = sampleResult({ artifacts });
    const before = Date.now();
    await cluster.log(result.client, result.job, stepStarted('(from busybox)'));
    await cluster.log(result.client, result.job, '(from busybox)\n---> using "aaa" from cache\n');
    await cluster.log(result.client, result.job, stepFinished(true));
    await cluster.log(result.client, result.job, 'done\n', 'succeeded');
    await cluster.result(result);

    const stored = await until('the build', () => queries.getBuild(asBuildId(result.job)));
    expect(stored.artifacts).toEqual([
      { path: 'etc/motd', size: 3, sha256: sha256Hex('hi\n') },
      { path: 'usr/local/bin/hello', size: bin.length, sha256: sha256Hex(bin) },
    ]);
    expect(stored.steps.map((s) => [s.op, s.cached])).toEqual([
      ['(from busybox)', true],
      ['(run (shell "echo hello > /hello"))', false],
    ]);
    expect(stored.logSha256).toBe(sha256Hex('(from busybox)\n---> using "aaa" from cache\ndone\n'));
    // Beside the text: where its steps are, and when each chunk was written.
    const index = decodeLogIndex(stored.logIndex!, stored.logBytes!, 'the stored build');
    expect(index.steps).toEqual([
      [0, stepStarted('(from busybox)')],
      [43, stepFinished(true)],
    ]);
    expect(index.times.map(([byte]) => byte)).toEqual([0, 43]);
    for (const [, at] of index.times) expect(at).toBeGreaterThanOrEqual(before - 1000);
    const blob = await rs.store.blobs.openVerified(stored.artifacts[1]!.sha256);
    expect(blob?.size).toBe(bin.length);
  });

  it("keeps the trace ID of the result's Cairn-Trace header and shows it on the build's page and in the API; ignores one that is not a trace ID", async () => {
    const trace = newTraceId();
    const traced = sampleResult({ name: 'traced' });
    // As the scheduler publishes a result.
    await durablePublish(nc, subjects.result(traced.pool), JSON.stringify(traced), { msgId: traced.job, trace });
    expect((await until('the traced build', () => queries.getBuild(asBuildId(traced.job)))).trace).toBe(trace);
    expect((await (await fetch(`${rs.url}/api/v1/builds/${traced.job}`)).json()) as unknown).toMatchObject({ id: traced.job, trace });
    expect(await (await fetch(`${rs.url}/builds/${traced.job}`)).text()).toMatch(new RegExp(`<dt>Trace</dt><dd[^>]*>${trace}</dd>`));

    const forged = sampleResult({ name: 'forged-trace' });
    await durablePublish(nc, subjects.result(forged.pool), JSON.stringify(forged), { msgId: forged.job, trace: '<script>' });
    expect((await until('the build with a forged trace', () => queries.getBuild(asBuildId(forged.job)))).trace).toBeNull();
    expect(await (await fetch(`${rs.url}/builds/${forged.job}`)).text()).not.toContain('<dt>Trace</dt>');
  });

  it('stores a result delivered twice once, and acks both', async () => {
    const result = sampleResult({ name: 'twice' });
    await cluster.result(result);
    // A second copy past the stream's de-duplication (another message ID), as a redelivery after a crash would be.
    await cluster.result(result, `${result.job}-again`);
    await until('both handled', async () => {
      const info = await (await jetstreamManager(nc)).consumers.info(streams.results.name, rs.store.config.durable);
      return info.num_pending === 0 && info.num_ack_pending === 0 ? true : undefined;
    });
    const page = await queries.listBuilds({ job: 'twice' });
    expect(page.items.map((b) => b.id)).toEqual([result.job]);
  });

  it('shares one blob between builds with the same artifact', async () => {
    const bytes = Buffer.from('shared bytes');
    const a = sampleResult({ name: 'share-a', artifacts: [await cluster.artifact('/out/x', bytes)] });
    const b = sampleResult({ name: 'share-b', artifacts: [await cluster.artifact('/other/y', bytes)] });
    await cluster.result(a);
    await cluster.result(b);
    await until('both builds', async () => ((await queries.getBuild(asBuildId(a.job))) && (await queries.getBuild(asBuildId(b.job))) ? true : undefined));
    const named = (await files(join(rs.dataDir, 'sha256'))).filter((f) => f.endsWith(sha256Hex(bytes)));
    expect(named).toHaveLength(1);
  });

  it('waits for an artifact that is not yet in the object store, then stores the build', async () => {
    const bytes = Buffer.from('late artifact');
    const result = sampleResult({ name: 'late', artifacts: [{ path: '/late', size: bytes.length, sha256: sha256Hex(bytes) }] });
    await cluster.result(result);
    await new Promise((r) => setTimeout(r, 700));
    expect(await queries.getBuild(asBuildId(result.job))).toBeUndefined();
    await cluster.artifact('/late', bytes);
    const stored = await until('the late build', () => queries.getBuild(asBuildId(result.job)), 30_000);
    expect(stored.artifacts[0]?.sha256).toBe(sha256Hex(bytes));
  });

  it("keeps the last attempt's log when a requeued job logged twice", async () => {
    const result = sampleResult({ name: 'requeued', attempts: 2 });
    await cluster.log(result.client, result.job, 'first worker, lost\n', undefined, 1);
    await cluster.log(result.client, result.job, 'second worker\n', undefined, 2);
    await cluster.log(result.client, result.job, 'done\n', 'succeeded', 2);
    await cluster.result(result);
    const stored = await until('the requeued build', () => queries.getBuild(asBuildId(result.job)));
    expect(stored.logSha256).toBe(sha256Hex('second worker\ndone\n'));
    expect(stored.note).toContain('attempt(s) 1 were not kept');
  });

  it("keeps the log of the worker that ran the last run, not chunks in another worker's subject", async () => {
    const result = sampleResult({ name: 'forged-log', worker: 'w1' });
    await cluster.log(result.client, result.job, 'compiling\n', undefined, 1, 'w1');
    await cluster.log(result.client, result.job, 'error: 3 tests failed\n', 'failed', 1, 'w1');
    // As w9 would publish it (were NATS not stopping it), numbered to follow w1's.
    const forged = { job: result.job, attempt: 1, seq: 3, text: 'all tests passed\n' };
    await jetstream(nc).publish(subjects.log(result.client, result.job, 'w9'), JSON.stringify(forged));
    await cluster.result({ ...result, state: 'failed' });
    const stored = await until('the build with a forged log', () => queries.getBuild(asBuildId(result.job)));
    expect(stored.logSha256).toBe(sha256Hex('compiling\nerror: 3 tests failed\n'));
  });

  it('stores a burst of results with many artifacts each exactly once, every artifact byte for byte', async () => {
    const shared = [randomBytes(3000), randomBytes(5000)];
    const expected = new Map<string, Map<string, Buffer>>();
    const results = await Promise.all(
      Array.from({ length: 30 }, async (_, r) => {
        const files = new Map<string, Buffer>();
        for (let a = 0; a < 20; a++) files.set(`out/${a}.bin`, randomBytes(1000 + ((r * 20 + a) % 7) * 700));
        files.set('out/shared-0', shared[0]!);
        files.set('out/shared-1', shared[1]!);
        const artifacts = await Promise.all([...files].map(([path, bytes]) => cluster.artifact(`/${path}`, bytes)));
        const result = sampleResult({ name: `burst-${r}`, artifacts });
        expected.set(result.job, files);
        return result;
      }),
    );
    // Each twice, as after a crash, all at once.
    await Promise.all(results.flatMap((r) => [cluster.result(r), cluster.result(r, `${r.job}-again`)]));
    await until(
      'the burst handled',
      async () => {
        const info = await (await jetstreamManager(nc)).consumers.info(streams.results.name, rs.store.config.durable);
        const stored = await rs.store.ds.getRepository(BuildEntity).countBy({ id: In(results.map((r) => asBuildId(r.job))) });
        return info.num_pending === 0 && info.num_ack_pending === 0 && stored === results.length ? true : undefined;
      },
      60_000,
    );
    for (const result of results) {
      expect((await queries.listBuilds({ job: result.name })).items.map((b) => b.id)).toEqual([result.job]);
      const stored = await queries.getBuild(asBuildId(result.job));
      const files = expected.get(result.job)!;
      expect(stored!.artifacts).toEqual(
        [...files].map(([path, bytes]) => ({ path, size: bytes.length, sha256: sha256Hex(bytes) })).sort((a, b) => (a.path < b.path ? -1 : 1)),
      );
      for (const artifact of stored!.artifacts) {
        const blob = await rs.store.blobs.openVerified(artifact.sha256);
        const chunks: Buffer[] = [];
        for await (const chunk of blob!.stream() as AsyncIterable<Buffer>) chunks.push(chunk);
        expect(Buffer.concat(chunks).equals(files.get(artifact.path)!)).toBe(true);
      }
    }
  });

  it('fails only the result of a batch whose artifact does not match its digest', async () => {
    const good = await Promise.all(
      [0, 1, 2].map(async (i) => sampleResult({ name: `batch-good-${i}`, artifacts: [await cluster.artifact('/ok', Buffer.from(`good ${i}`))] })),
    );
    // A worker's blob whose bytes are not what its name says, as a faulty worker could publish it.
    const claimed = Buffer.from('the bytes the name is the digest of');
    const sent = Buffer.from('other bytes, just as long, sent here');
    const upload = `forged${Date.now()}`;
    const js = jetstream(nc);
    await js.publish(`${subjects.blobsOf('artifacts', 'w1')}.c.${upload}`, sent);
    await js.publish(`${subjects.blobsOf('artifacts', 'w1')}.m.${sha256Hex(claimed)}`, JSON.stringify({ size: sent.length, chunks: 1, upload }));
    const bad = sampleResult({
      name: 'batch-bad',
      artifacts: [
        await cluster.artifact('/fine', Buffer.from('a fine artifact of the bad result')),
        { path: '/forged', size: sent.length, sha256: sha256Hex(claimed) },
      ],
    });
    const batch = [good[0]!, bad, good[1]!, good[2]!].map((result) => ({ result, lastAttempt: false }));
    const settled = await rs.store.app.get(Ingest).fromClusterBatch(batch);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(String((settled[1] as PromiseRejectedResult).reason)).toMatch(/artifact forged: .* not its name/);
    for (const result of good)
      expect((await queries.getBuild(asBuildId(result.job)))?.artifacts).toEqual([
        { path: 'ok', size: result.artifacts[0]!.size, sha256: result.artifacts[0]!.sha256 },
      ]);
    expect(await queries.getBuild(asBuildId(bad.job))).toBeUndefined();
    expect(await rs.store.blobs.size(asSha256(sha256Hex(claimed)))).toBeUndefined();
  });

  it('drops a message that is not a BuildResult without blocking the ones behind it', async () => {
    await nc.publish('cairn.v1.results.linux-x86_64', JSON.stringify({ job: 'nonsense' }));
    const result = sampleResult({ name: 'after-junk' });
    await cluster.result(result);
    await until('the build after the junk', () => queries.getBuild(asBuildId(result.job)));
  });
});
