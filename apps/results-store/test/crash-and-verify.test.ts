import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectBus } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { ClusterStandIn, sampleResult, sha256Hex, spawnResultsStore, type ResultsStoreProcess } from '../../../test/support/results-store.js';
import { BlobStore } from '../src/blobs/blob-store.js';
import { openDatabase } from '../src/db/data-source.js';
import { asBuildId, asSha256 } from '../src/ids.js';
import { verifyStore } from '../src/maintenance/verify-store.js';
import { BuildQueries } from '../src/queries/build-queries.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** `main.ts verify`, as an operator runs it. */
function verifyCommand(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx/esm', join(ROOT, 'apps/results-store/src/main.ts'), 'verify'], {
      cwd: ROOT,
      env: { ...process.env, TSX_TSCONFIG_PATH: join(ROOT, 'apps/results-store/tsconfig.json'), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('a results-store killed between writing a blob and committing its row', () => {
  let nats: RunningNats;
  let nc: NatsConnection;
  let dir: string;
  let env: Record<string, string>;
  let store: ResultsStoreProcess | undefined;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectBus({ servers: nats.url, name: 'test-cluster' });
    dir = await mkdtemp(join(tmpdir(), 'cairn-rs-crash-'));
    env = {
      CAIRN_NATS: nats.url,
      CAIRN_RESULTS_DIR: join(dir, 'data'),
      CAIRN_RESULTS_DB: join(dir, 'data', 'results.sqlite'),
      CAIRN_RESULTS_ACK_WAIT_MS: '3000',
    };
  });
  afterAll(async () => {
    await store?.stop();
    await nc?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves an orphan blob and no row; after a restart the result is stored whole', async () => {
    const cluster = new ClusterStandIn(nc);
    const small = Buffer.from('the small artifact, copied first');
    // Big enough that copying it takes a while after the small one has landed.
    const big = Buffer.alloc(120 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
    const result = sampleResult({ name: 'crashed', artifacts: [await cluster.artifact('/small', small), await cluster.artifact('/big', big)] });
    const blobs = new BlobStore(env.CAIRN_RESULTS_DIR!);
    const smallPath = blobs.pathOf(asSha256(sha256Hex(small)));

    store = await spawnResultsStore(env);
    await cluster.result(result);
    const deadline = Date.now() + 60_000;
    while (!existsSync(smallPath)) {
      if (Date.now() > deadline) throw new Error(`the small blob never appeared: ${store.output()}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    const exited = new Promise((r) => store!.child.once('exit', r));
    store.child.kill('SIGKILL');
    await exited;
    store = undefined;

    const ds = await openDatabase(env.CAIRN_RESULTS_DB!);
    try {
      expect(await new BuildQueries(ds).getBuild(asBuildId(result.job))).toBeUndefined();
      const report = await verifyStore(ds, blobs);
      expect(report.missing).toEqual([]);
      expect(report.corrupt).toEqual([]);
      expect(report.orphans.map((o) => o.sha256)).toEqual([sha256Hex(small)]);
    } finally {
      await ds.destroy();
    }
    const listed = await verifyCommand(env);
    expect(listed.code).toBe(0);
    expect(listed.out).toContain(`orphan ${sha256Hex(small)}`);

    // The result was never acked: it comes again, and this time is stored with both blobs.
    store = await spawnResultsStore(env);
    await expect.poll(async () => (await fetch(`${store!.url}/api/v1/builds/${result.job}`)).status, { timeout: 60_000, interval: 200 }).toBe(200);
    const after = await verifyCommand(env);
    expect(after.code).toBe(0);
    expect(after.out).not.toContain('orphan ');
    expect(after.out).toContain('ok: 0 orphan(s)');
    expect(after.out).toContain('checked 2 blob(s)');
  });

  it('verify fails on a tampered blob, and the download refuses it', async () => {
    const blobs = new BlobStore(env.CAIRN_RESULTS_DIR!);
    const small = Buffer.from('the small artifact, copied first');
    const path = blobs.pathOf(asSha256(sha256Hex(small)));
    await chmod(path, 0o644);
    await writeFile(path, 'the small artifact, altered on disk');
    const report = await verifyCommand(env);
    expect(report.code).toBe(1);
    expect(report.out).toContain(`corrupt ${sha256Hex(small)}`);
    const builds = (await (await fetch(`${store!.url}/api/v1/builds?q=crashed`)).json()) as { items: { id: string }[] };
    const download = await fetch(`${store!.url}/api/v1/builds/${builds.items[0]!.id}/artifacts/small`);
    expect(download.status).toBe(500);
    expect(((await download.json()) as { message: string }).message).toContain('failed its SHA-256 check');
  });
});
