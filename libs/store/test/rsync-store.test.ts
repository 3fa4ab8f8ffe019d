import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTempDir, type TestFilesystem } from '../../../test/support/filesystems.js';
import type { Store } from '../src/index.js';
import { describeStoreBehaviour, openStore, rootfs } from './store-behaviour.js';
import { rsyncFixture, rsyncHardlinkFixture } from './store-fixtures.js';

describeStoreBehaviour(rsyncFixture);
describeStoreBehaviour(rsyncHardlinkFixture);

describe('the rsync store, specifically', () => {
  let fs: TestFilesystem;
  beforeAll(async () => {
    fs = await withTempDir();
  });
  afterAll(async () => {
    await fs?.cleanup();
  });

  const inode = (store: Store, id: string) => store.withRootfs(id, async (r) => (await stat(join(r, 'file'))).ino);

  it("hard-links a child's unchanged files to its parent's in hard-link mode, and copies them in copy mode", async () => {
    for (const [kind, shared] of [
      ['rsync-hardlink', true],
      ['rsync', false],
    ] as const) {
      const store = await openStore(kind, join(fs.path, kind));
      await store.build(undefined, 'parent', async (dir) => writeFile(rootfs(dir, 'file'), 'unchanged'));
      await store.build('parent', 'child', async () => undefined);
      expect((await inode(store, 'child')) === (await inode(store, 'parent'))).toBe(shared);
    }
  });
});
