import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTempDir, type TestFilesystem } from '../../../test/support/filesystems.js';
import { mountOverlay } from '../src/mount.js';
import { describeStoreBehaviour, expectNothingLeft, openStore, rootfs } from './store-behaviour.js';
import { overlayfsFixture } from './store-fixtures.js';

describeStoreBehaviour(overlayfsFixture);

describe('the overlayfs store, specifically', () => {
  let fs: TestFilesystem;
  beforeAll(async () => {
    fs = await withTempDir();
  });
  afterAll(async () => {
    await fs?.cleanup();
  });

  it('builds and mounts a stack of 120 layers', async () => {
    const root = join(fs.path, 'deep');
    const store = await openStore('overlayfs', root);
    let parent: string | undefined;
    for (let i = 0; i < 120; i++) {
      const id = `layer-${i}`;
      await store.build(parent, id, async (dir) => {
        await writeFile(rootfs(dir, id), `${i}`);
        await rm(rootfs(dir, 'top'), { force: true });
        await writeFile(rootfs(dir, 'top'), id);
      });
      parent = id;
    }
    const seen = await store.withRootfs('layer-119', async (r) => ({ files: (await readdir(r)).length, top: await readFile(join(r, 'top'), 'utf8') }));
    expect(seen).toEqual({ files: 121, top: 'layer-119' });
    expect(await store.withRootfs('layer-60', async (r) => (await readdir(r)).length)).toBe(62);
    await expectNothingLeft(root);
  });

  it('refuses to delete a layer that another layer or a mounted view stands on', async () => {
    const store = await openStore('overlayfs', join(fs.path, 'refs'));
    await store.build(undefined, 'parent', async (dir) => writeFile(rootfs(dir, 'p'), 'p'));
    await store.build('parent', 'child', async () => undefined);
    await expect(store.delete('parent')).rejects.toThrow(/1 layer\(s\) or mounted view\(s\) stand on it/);
    await store.delete('child');
    await store.withRootfs('parent', async () => {
      await expect(store.delete('parent')).rejects.toThrow(/stand on it/);
    });
    await store.delete('parent');
    expect(await store.exists('parent')).toBe(false);
    expect(await readdir(join(fs.path, 'refs', 'l'))).toEqual([]);
  });

  it('refuses clearly a stack too deep for the mount options', async () => {
    const lower = Array.from({ length: 400 }, (_, i) => `l/${String(i).padStart(8, '0')}`);
    await expect(mountOverlay({ cwd: fs.path, lower, target: fs.path })).rejects.toThrow(/a stack of 400 layers is too deep for one overlay mount/);
  });
});
