import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Builder, type LogEvent } from '@cairn/builder';
import { RegistryFetcher } from '@cairn/fetcher';
import { baseId } from '@cairn/hashing';
import { createSandbox } from '@cairn/sandbox';
import { parseSpec } from '@cairn/spec';
import { ZfsStore } from '@cairn/store';
import { startRegistry, type RunningRegistry } from '../../../test/support/registry.js';
import { makeBusyboxRootfs } from '../../../test/support/rootfs.js';
import { withZfsPool, type TestPool } from '../../../test/support/zfs.js';
import { RegistryPublisher } from '../src/registry-publisher.js';

const run = promisify(execFile);

// Issue 13's ZFS acceptance on zfs-fuse and a real docker-registry: the publisher makes
// each image also a ZFS dataset stream in the registry; an engine on a ZFS store, fetching
// from that registry, receives it instead of unpacking layers and builds on it with runc;
// a rebuilt image is a new dataset, and the old one goes with a prune.
let work: string;
let pool: TestPool;
let registry: RunningRegistry;
let store: ZfsStore;
let builder: Builder;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cairn-zfs-publish-'));
  [pool, registry] = await Promise.all([withZfsPool(), startRegistry()]);
  store = new ZfsStore({ pool: pool.name, root: `${pool.name}/cairn` });
  builder = await Builder.open({
    store,
    sandbox: createSandbox('runc', { stateDir: join(work, 'runc-state') }),
    fetcher: new RegistryFetcher({ registry: registry.url }),
    dbPath: join(work, 'db.sqlite'),
    secretKey: 'test-key',
  });
}, 120_000);

afterAll(async () => {
  builder?.close();
  store?.unmountIdle();
  await registry?.stop();
  await pool?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Publishes a busybox whose /etc/origin says `origin`; the image's digest. */
async function publish(publisher: RegistryPublisher, origin: string): Promise<string> {
  const rootfs = await mkdtemp(join(work, 'rootfs-'));
  await chmod(rootfs, 0o755);
  await makeBusyboxRootfs(rootfs);
  await writeFile(join(rootfs, 'etc', 'origin'), `${origin}\n`);
  return publisher.publishRootfs('busybox', ['latest'], rootfs, ['linux/amd64']);
}

async function build(image: string): Promise<{ output: string; id: string }> {
  const events: LogEvent[] = [];
  const id = await builder.build(parseSpec(`((from ${image}) (shell /bin/sh -c) (run (shell "cat /etc/origin")))`), { log: (e) => void events.push(e) });
  return { output: Buffer.concat(events.flatMap((e) => (e.tag === 'output' ? [e.data] : []))).toString(), id };
}

async function text(chunks: AsyncIterable<Uint8Array>): Promise<string> {
  const all: Uint8Array[] = [];
  for await (const chunk of chunks) all.push(chunk);
  return Buffer.concat(all).toString();
}

const datasets = async () => (await run('zfs', ['list', '-H', '-o', 'name', '-r', pool.name])).stdout.trim().split('\n');

it('receives a published image from its dataset stream and builds on it; a rebuilt image is a new dataset, and the old one is pruned', async () => {
  const publisher = new RegistryPublisher(registry.url, { zfsDataset: `${pool.name}/publish` });
  const first = publisher.pinned('busybox', await publish(publisher, 'first'));
  const one = await build(first);
  expect(one.output).toContain('a ZFS dataset stream for linux/amd64');
  expect(one.output).toContain('first\n');
  // The base result is the received dataset: its log is the one the publisher wrote.
  expect(await text(store.log(baseId(first)))).toContain('received as a ZFS dataset stream');
  // The publisher's scratch datasets are gone once sent.
  expect((await datasets()).filter((d) => d.startsWith(`${pool.name}/publish/`))).toEqual([]);

  const second = publisher.pinned('busybox', await publish(publisher, 'second'));
  expect(second).not.toBe(first);
  const between = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 20));
  const two = await build(second);
  expect(two.output).toContain('second\n');
  expect(await text(store.log(baseId(second)))).toContain('received as a ZFS dataset stream');

  const pruned = await builder.prune(between, 100);
  expect(pruned).toEqual(expect.arrayContaining([one.id, baseId(first)]));
  expect(await store.exists(baseId(first))).toBe(false);
  expect(await store.exists(baseId(second))).toBe(true);
  expect((await datasets()).some((d) => d.endsWith(baseId(first)))).toBe(false);
  expect((await datasets()).some((d) => d.endsWith(baseId(second)))).toBe(true);
}, 300_000);
