import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withBtrfs, withTempDir, type TestFilesystem } from '../../../test/support/filesystems.js';
import { BtrfsStore } from '../src/index.js';
import { describeStoreBehaviour, openStore, rootfs } from './store-behaviour.js';
import { btrfsFixture } from './store-fixtures.js';

describeStoreBehaviour(btrfsFixture);

describe('the btrfs store, specifically', () => {
  let fs: TestFilesystem;
  beforeAll(async () => {
    fs = await withBtrfs();
  });
  afterAll(async () => {
    await fs?.cleanup();
  });

  it('publishes read-only subvolumes', async () => {
    const store = await openStore('btrfs', join(fs.path, 'store'));
    await store.build(undefined, 'sealed', async (dir) => writeFile(rootfs(dir, 'file'), 'x'));
    const result = join(fs.path, 'store', 'result', 'sealed');
    await expect(writeFile(join(result, 'rootfs', 'file'), 'changed')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(writeFile(join(result, 'log'), 'changed')).rejects.toMatchObject({ code: 'EROFS' });
  });

  it('refuses a directory that is not on btrfs', async () => {
    const dir = await withTempDir();
    try {
      await expect(new BtrfsStore(dir.path).init()).rejects.toThrow(/is not on a btrfs filesystem/);
    } finally {
      await dir.cleanup();
    }
  });
});
