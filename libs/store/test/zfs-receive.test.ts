import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { withZfsPool, type TestPool } from '../../../test/support/zfs.js';
import { Zfs } from '../src/zfs.js';
import { ZfsStore } from '../src/zfs-store.js';

const run = promisify(execFile);
const DIGEST = 'sha256:5e1f';

// A base image as a ZFS dataset stream (docs/zfs.md): `zfs send` of
// base-image/NAME@DIGEST into a file, received by the store as a result, on zfs-fuse.
let pool: TestPool;
let stream: string;
beforeAll(async () => {
  pool = await withZfsPool();
  const image = `${pool.name}/base-image/busybox`;
  await run('zfs', ['create', '-p', image]);
  await mkdir(join('/', image, 'rootfs', 'etc'), { recursive: true });
  await writeFile(join('/', image, 'rootfs', 'etc', 'hello'), 'from the stream\n');
  await run('zfs', ['snapshot', `${image}@${DIGEST}`]);
  stream = join(pool.path, 'busybox.zfs');
  await new Zfs().send(`${image}@${DIGEST}`, stream);
});
afterAll(async () => {
  await pool?.cleanup();
});

it('receives a base image stream as a result while the store is in use, and builds on it', async () => {
  const store = new ZfsStore({ pool: pool.name });
  await store.init();
  await store.build(undefined, 'other', async (dir) => writeFile(join(dir, 'rootfs', 'f'), 'x'));
  // In use: a reader holds another result mounted meanwhile.
  await store.withRootfs('other', async () => {
    await store.receive('base-5e1f', stream);
  });
  expect(await store.withRootfs('base-5e1f', (rootfs) => readFile(join(rootfs, 'etc', 'hello'), 'utf8'))).toBe('from the stream\n');
  await store.build('base-5e1f', 'on-top', async (dir) => writeFile(join(dir, 'rootfs', 'etc', 'more'), 'built\n'));
  expect(await store.withRootfs('on-top', (rootfs) => readFile(join(rootfs, 'etc', 'hello'), 'utf8'))).toBe('from the stream\n');
  await expect(store.receive('base-5e1f', stream)).rejects.toThrow(/already has a result base-5e1f/);
  // Pruning goes leaf first, as for any result.
  await store.delete('on-top');
  await store.delete('base-5e1f');
  expect(await store.exists('base-5e1f')).toBe(false);
});
