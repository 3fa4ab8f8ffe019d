import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTempDir, withXfs, type TestFilesystem } from '../../../test/support/filesystems.js';
import { XfsStore } from '../src/index.js';
import { describeStoreBehaviour, openStore, rootfs } from './store-behaviour.js';
import { xfsFixture } from './store-fixtures.js';

describeStoreBehaviour(xfsFixture);

describe('the xfs store, specifically', () => {
  let fs: TestFilesystem;
  beforeAll(async () => {
    fs = await withXfs();
  });
  afterAll(async () => {
    await fs?.cleanup();
  });

  it("shares a parent's data with its child instead of copying it", async () => {
    const store = await openStore('xfs', join(fs.path, 'store'));
    const size = 256 * 1024 * 1024;
    await store.build(undefined, 'big', async (dir) => {
      const file = await open(rootfs(dir, 'data'), 'w');
      await file.write(Buffer.alloc(size, 7));
      await file.sync();
      await file.close();
    });
    const before = (await store.df()).bytesFree;
    await store.build('big', 'clone', async () => undefined);
    const used = before - (await store.df()).bytesFree;
    expect(used).toBeLessThan(size / 16);
  });

  it('refuses a filesystem without reflink copies', async () => {
    const dir = await withTempDir();
    try {
      await expect(new XfsStore(dir.path).init()).rejects.toThrow(/needs a filesystem with reflink copies/);
    } finally {
      await dir.cleanup();
    }
  });
});
