import { spawnSync } from 'node:child_process';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreFullError } from '../src/store.js';
import { ZfsStore, zfsStoreOptions } from '../src/zfs-store.js';
import { logText } from './store-behaviour.js';
import { C, CT, normalize, R, RT, ShimmedPool } from './zfs-pool.js';

const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;
const me = { kind: 'unix', uid, gid } as const;

describe('ZFS store (recording shim: the command sequences, and what zfs-fuse cannot show)', () => {
  let pool: ShimmedPool;
  beforeEach(async () => {
    pool = await ShimmedPool.create();
  });
  afterEach(async () => {
    await rm(pool.dir, { recursive: true, force: true });
  });

  async function tempOf(dataset: string): Promise<string[]> {
    return Object.keys((await pool.readState()).datasets).filter((d) => d.startsWith(`${dataset}/`));
  }

  describe('init', () => {
    it('lays out an empty pool', async () => {
      const store = pool.store();
      await store.init();
      expect(await pool.takeLog()).toEqual([
        'zpool list -H -o health tank',
        'zfs get -H -o value mountpoint tank/cairn',
        'zfs create -p -o mountpoint=$MNT tank/cairn',
        `zfs create ${R}`,
        `zfs create ${RT}`,
        `zfs create ${C}`,
        `zfs create ${CT}`,
        `zfs list -H -o name -t filesystem -d 1 ${RT} ${CT}`,
      ]);
      expect(store.root).toBe('tank/cairn');
      expect(store.kind).toBe('zfs');
    });

    it('keeps what exists and destroys the temps of dead processes only', async () => {
      await pool.initStore();
      const dead = spawnSync(process.execPath, ['-e', '']).pid;
      pool.zfs('create', `${RT}/${dead}-1-x`);
      pool.zfs('create', `${CT}/${dead}-2-opam`);
      pool.zfs('create', `${RT}/${process.pid}-999-live`);
      await pool.takeLog();
      await pool.store().init();
      expect(await pool.takeLog()).toEqual([
        'zpool list -H -o health tank',
        'zfs get -H -o value mountpoint tank/cairn',
        'zfs list -H -o name -t filesystem -d 1 tank/cairn',
        `zfs list -H -o name -t filesystem -d 1 ${RT} ${CT}`,
        `zfs destroy -r ${RT}/${dead}-1-x`,
        `zfs destroy -r ${CT}/${dead}-2-opam`,
      ]);
      expect(await tempOf(RT)).toEqual([`${RT}/${process.pid}-999-live`]);
    });

    it('refuses a missing pool and a root mounted elsewhere', async () => {
      await expect(pool.store({ pool: 'nope', root: 'nope/cairn' }).init()).rejects.toThrow(/needs ZFS pool nope, and there is no such pool/);
      await pool.initStore();
      await expect(pool.store({ mountRoot: join(pool.dir, 'elsewhere') }).init()).rejects.toThrow(/tank\/cairn is mounted at .*mnt\/cairn, not at .*elsewhere/);
    });
  });

  describe('build', () => {
    it('from no parent: create, run, snapshot, rename, unmount', async () => {
      const store = await pool.initStore();
      let seen = '';
      await store.build(undefined, 'a', async (dir) => {
        seen = dir;
        expect((await stat(join(dir, 'rootfs'))).isDirectory()).toBe(true);
        await writeFile(join(dir, 'rootfs', 'file'), 'A');
        await writeFile(join(dir, 'log'), 'built a');
      });
      expect(normalize.call(pool, seen)).toBe('$MNT/result-tmp/T-a');
      expect(await pool.takeLog()).toEqual([
        `zfs list -H -o name ${R}/a`,
        `zfs create ${RT}/T-a`,
        `zfs snapshot -r ${RT}/T-a@snap`,
        `zfs rename ${RT}/T-a ${R}/a`,
        `zfs unmount ${R}/a`,
      ]);
      expect(await store.exists('a')).toBe(true);
      // Unmounted: an empty mountpoint, MOUNT_ROOT/result/ID, until withRootfs mounts it.
      expect(await readdir(join(pool.mountRoot, 'result', 'a'))).toEqual([]);
      expect(await tempOf(RT)).toEqual([]);
    });

    it('from a parent: clone, run, snapshot, rename, unmount; only the rootfs is inherited', async () => {
      const store = await pool.initStore();
      await store.build(undefined, 'a', async (dir) => {
        await writeFile(join(dir, 'rootfs', 'file'), 'A');
        await writeFile(join(dir, 'log'), 'built a');
      });
      await pool.takeLog();
      await store.build('a', 'b', async (dir) => {
        expect(await readFile(join(dir, 'rootfs', 'file'), 'utf8')).toBe('A');
        expect(await readdir(dir)).toEqual(['rootfs']);
        await writeFile(join(dir, 'rootfs', 'file'), 'B');
      });
      expect(await pool.takeLog()).toEqual([
        `zfs list -H -o name ${R}/b`,
        `zfs list -H -o name ${R}/a`,
        `zfs clone ${R}/a@snap ${RT}/T-b`,
        `zfs snapshot -r ${RT}/T-b@snap`,
        `zfs rename ${RT}/T-b ${R}/b`,
        `zfs unmount ${R}/b`,
      ]);
      expect((await pool.readState()).datasets[`${R}/b`]?.origin).toBe(`${R}/a@snap`);
      await store.withRootfs('a', async (rootfs) => expect(await readFile(join(rootfs, 'file'), 'utf8')).toBe('A'));
      await store.withRootfs('b', async (rootfs) => expect(await readFile(join(rootfs, 'file'), 'utf8')).toBe('B'));
    });

    it('with a disk limit: the quota is set on the temp after the clone, before the step writes', async () => {
      const store = await pool.initStore();
      await store.build(undefined, 'a', async (dir) => writeFile(join(dir, 'rootfs', 'file'), 'A'));
      await pool.takeLog();
      await store.build('a', 'b', async (dir) => writeFile(join(dir, 'rootfs', 'file'), 'B'), { diskBytes: 64 * 1024 * 1024 });
      expect(await pool.takeLog()).toEqual([
        `zfs list -H -o name ${R}/b`,
        `zfs list -H -o name ${R}/a`,
        `zfs clone ${R}/a@snap ${RT}/T-b`,
        `zfs set quota=67108864 ${RT}/T-b`,
        `zfs snapshot -r ${RT}/T-b@snap`,
        `zfs rename ${RT}/T-b ${R}/b`,
        `zfs unmount ${R}/b`,
      ]);
      // A step failing with room under its quota (the shim's directories are plain ones) fails with its own error.
      await expect(store.build('a', 'c', () => Promise.reject(new Error('step failed')), { diskBytes: 64 * 1024 * 1024 })).rejects.toThrow(/^step failed$/);
      expect(await tempOf(RT)).toEqual([]);
    });

    it('when fn throws: destroys the temp, publishes nothing, rethrows', async () => {
      const store = await pool.initStore();
      await expect(
        store.build(undefined, 'bad', async (dir) => {
          await writeFile(join(dir, 'rootfs', 'file'), 'x');
          throw new Error('step failed');
        }),
      ).rejects.toThrow('step failed');
      expect(await pool.takeLog()).toEqual([`zfs list -H -o name ${R}/bad`, `zfs create ${RT}/T-bad`, `zfs destroy -r ${RT}/T-bad`]);
      expect(await store.exists('bad')).toBe(false);
      expect(await tempOf(RT)).toEqual([]);
      expect(await readdir(join(pool.mountRoot, 'result-tmp'))).toEqual([]);
    });

    it('a full pool: StoreFullError, the temp destroyed, nothing published', async () => {
      const store = await pool.initStore();
      await pool.failing('snapshot', `cannot create snapshot '${RT}/x@snap': out of space`);
      const error: unknown = await store.build(undefined, 'big', async () => {}).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreFullError);
      expect((error as Error).message).toMatch(/the zfs store tank\/cairn is full; nothing was published .*out of space/);
      expect(await pool.takeLog()).toEqual([
        `zfs list -H -o name ${R}/big`,
        `zfs create ${RT}/T-big`,
        `zfs snapshot -r ${RT}/T-big@snap`,
        `zfs destroy -r ${RT}/T-big`,
      ]);
      expect(await tempOf(RT)).toEqual([]);
    });

    it('with unmountResults false: results stay mounted, withRootfs mounts nothing', async () => {
      const store = await pool.initStore({ unmountResults: false });
      await store.build(undefined, 'a', async (dir) => writeFile(join(dir, 'log'), 'built a'));
      expect((await pool.takeLog()).at(-1)).toBe(`zfs rename ${RT}/T-a ${R}/a`);
      expect(await logText(store, 'a')).toBe('built a');
      await store.withRootfs('a', async (rootfs) => expect(await readdir(rootfs)).toEqual([]));
      expect(await pool.takeLog()).toEqual([`zfs list -H -o name ${R}/a`]);
    });

    it('refuses an existing ID and a missing parent without touching anything', async () => {
      const store = await pool.initStore();
      await store.build(undefined, 'a', async () => {});
      await pool.takeLog();
      await expect(store.build(undefined, 'a', async () => {})).rejects.toThrow(/already has a result a/);
      await expect(store.build('nope', 'c', async () => {})).rejects.toThrow(/has no result nope/);
      expect(await pool.takeLog()).toEqual([`zfs list -H -o name ${R}/a`, `zfs list -H -o name ${R}/c`, `zfs list -H -o name ${R}/nope`]);
    });

    it('clones child datasets (home, brew) with their parent and snapshots them together', async () => {
      const store = await pool.initStore({ children: ['home', 'brew'] });
      await store.build(undefined, 'a', async (dir) => {
        await writeFile(join(dir, 'home', '.profile'), 'home of a');
        await writeFile(join(dir, 'brew', 'formula'), 'brew of a');
      });
      expect(await pool.takeLog()).toEqual([
        `zfs list -H -o name ${R}/a`,
        `zfs create ${RT}/T-a`,
        `zfs create ${RT}/T-a/home`,
        `zfs create ${RT}/T-a/brew`,
        `zfs snapshot -r ${RT}/T-a@snap`,
        `zfs rename ${RT}/T-a ${R}/a`,
        `zfs unmount ${R}/a/home`,
        `zfs unmount ${R}/a/brew`,
        `zfs unmount ${R}/a`,
      ]);
      await store.build('a', 'b', async (dir) => {
        expect(await readFile(join(dir, 'home', '.profile'), 'utf8')).toBe('home of a');
        expect(await readFile(join(dir, 'brew', 'formula'), 'utf8')).toBe('brew of a');
        expect((await readdir(dir)).sort()).toEqual(['brew', 'home', 'rootfs']);
      });
      expect(await pool.takeLog()).toEqual([
        `zfs list -H -o name ${R}/b`,
        `zfs list -H -o name ${R}/a`,
        `zfs clone ${R}/a@snap ${RT}/T-b`,
        `zfs clone ${R}/a/home@snap ${RT}/T-b/home`,
        `zfs clone ${R}/a/brew@snap ${RT}/T-b/brew`,
        `zfs snapshot -r ${RT}/T-b@snap`,
        `zfs rename ${RT}/T-b ${R}/b`,
        `zfs unmount ${R}/b/home`,
        `zfs unmount ${R}/b/brew`,
        `zfs unmount ${R}/b`,
      ]);
      const state = await pool.readState();
      expect(state.datasets[`${R}/b/home`]?.origin).toBe(`${R}/a/home@snap`);
      expect(
        Object.keys(state.snapshots)
          .filter((s) => s.startsWith(`${R}/b`))
          .sort(),
      ).toEqual([`${R}/b/brew@snap`, `${R}/b/home@snap`, `${R}/b@snap`]);
      expect(() => new ZfsStore({ pool: 'tank', children: ['rootfs'] })).toThrow(/cannot be a child dataset/);
    });
  });

  describe('withRootfs', () => {
    it('mounts the result for fn and unmounts it after, even when fn throws', async () => {
      const store = await pool.initStore();
      await store.build(undefined, 'a', async (dir) => writeFile(join(dir, 'rootfs', 'file'), 'A'));
      await pool.takeLog();
      const text = await store.withRootfs('a', (rootfs) => readFile(join(rootfs, 'file'), 'utf8'));
      expect(text).toBe('A');
      expect(await pool.takeLog()).toEqual([`zfs list -H -o name ${R}/a`, `zfs mount ${R}/a`, `zfs unmount ${R}/a`]);
      await expect(store.withRootfs('a', () => Promise.reject(new Error('reader failed')))).rejects.toThrow('reader failed');
      expect(await pool.takeLog()).toEqual([`zfs list -H -o name ${R}/a`, `zfs mount ${R}/a`, `zfs unmount ${R}/a`]);
      expect((await pool.readState()).datasets[`${R}/a`]?.mounted).toBe(false);
    });

    it('mounts once for overlapping uses', async () => {
      const store = await pool.initStore();
      await store.build(undefined, 'a', async (dir) => writeFile(join(dir, 'rootfs', 'file'), 'A'));
      await pool.takeLog();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const first = store.withRootfs('a', async (rootfs) => {
        await gate;
        return readFile(join(rootfs, 'file'), 'utf8');
      });
      const second = store.withRootfs('a', (rootfs) => readFile(join(rootfs, 'file'), 'utf8'));
      expect(await second).toBe('A');
      release();
      expect(await first).toBe('A');
      const log = await pool.takeLog();
      expect(log.filter((l) => l.includes('mount'))).toEqual([`zfs mount ${R}/a`, `zfs unmount ${R}/a`]);
    });

    it('refuses a missing result', async () => {
      const store = await pool.initStore();
      await expect(store.withRootfs('nope', async () => {})).rejects.toThrow(/has no result nope/);
    });
  });

  describe('results mounted on demand (idleUnmountMs, as --store zfs:... does)', () => {
    const GRACE = 600;

    /** Polls until `check` holds: the idle unmount runs from a timer. */
    async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
      const deadline = Date.now() + 15_000;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const mounted = async (dataset: string) => (await pool.readState()).datasets[dataset]?.mounted === true;

    it('publishes with canmount=noauto, keeps the result mounted for the grace (children unmounted at once), then unmounts it', async () => {
      const store = await pool.initStore({ idleUnmountMs: GRACE, children: ['home'] });
      expect(await pool.takeLog()).toEqual([]);
      await store.build(undefined, 'a', async (dir) => writeFile(join(dir, 'log'), 'built a'));
      expect(await pool.takeLog()).toEqual([
        `zfs list -H -o name ${R}/a`,
        `zfs create ${RT}/T-a`,
        `zfs create ${RT}/T-a/home`,
        `zfs snapshot -r ${RT}/T-a@snap`,
        `zfs set canmount=noauto ${RT}/T-a ${RT}/T-a/home`,
        `zfs rename ${RT}/T-a ${R}/a`,
        `zfs unmount ${R}/a/home`,
      ]);
      const state = await pool.readState();
      expect([state.datasets[`${R}/a`]?.canmount, state.datasets[`${R}/a/home`]?.canmount]).toEqual(['noauto', 'noauto']);
      // Still mounted: the engine reads the log right after publishing, with no zfs command.
      expect(await logText(store, 'a')).toBe('built a');
      expect(await pool.takeLog()).toEqual([]);
      await eventually(async () => !(await mounted(`${R}/a`)), `${R}/a is unmounted`);
      expect(await pool.takeLog()).toEqual([`zfs unmount ${R}/a/home`, `zfs unmount ${R}/a`]);
      expect(await readdir(join(pool.mountRoot, 'result', 'a'))).toEqual([]);
    });

    it('reading the log of an unmounted result mounts it first, and its grace starts again', async () => {
      const store = await pool.initStore({ idleUnmountMs: GRACE });
      await store.build(undefined, 'a', async (dir) => writeFile(join(dir, 'log'), 'built a'));
      store.unmountIdle();
      expect(await mounted(`${R}/a`)).toBe(false);
      await pool.takeLog();
      expect(await logText(store, 'a')).toBe('built a');
      expect(await pool.takeLog()).toEqual([`zfs mount ${R}/a`]);
      // Asked again within the grace: nothing to run.
      await logText(store, 'a');
      expect(await pool.takeLog()).toEqual([]);
      await eventually(async () => !(await mounted(`${R}/a`)), `${R}/a is unmounted again`);
      expect(await pool.takeLog()).toEqual([`zfs unmount ${R}/a`]);
    });

    it('the log of a missing result is empty, and nothing is mounted for it', async () => {
      const store = await pool.initStore({ idleUnmountMs: GRACE });
      expect(await logText(store, 'nope')).toBe('');
      expect(await pool.takeLog()).toEqual([`zfs mount ${R}/nope`]);
    });

    it('withRootfs keeps the result mounted past the grace while in use; the grace starts when the last user leaves', async () => {
      const store = await pool.initStore({ idleUnmountMs: GRACE });
      await store.build(undefined, 'a', async (dir) => writeFile(join(dir, 'rootfs', 'file'), 'A'));
      store.unmountIdle();
      await pool.takeLog();
      const text = await store.withRootfs('a', async (rootfs) => {
        await new Promise((r) => setTimeout(r, GRACE * 3));
        return readFile(join(rootfs, 'file'), 'utf8');
      });
      expect(text).toBe('A');
      expect(await pool.takeLog()).toEqual([`zfs list -H -o name ${R}/a`, `zfs mount ${R}/a`]);
      expect(await mounted(`${R}/a`)).toBe(true);
      await eventually(async () => !(await mounted(`${R}/a`)), `${R}/a is unmounted after its last use`);
      expect(await pool.takeLog()).toEqual([`zfs unmount ${R}/a`]);
    });

    it('a busy result (a file open there) stays mounted and is tried again after another grace', async () => {
      const store = await pool.initStore({ idleUnmountMs: GRACE });
      await store.build(undefined, 'a', async () => {});
      await pool.busy([`${R}/a`]);
      await pool.takeLog();
      await eventually(async () => await pool.takeLog().then((log) => log.length > 0 && log.every((l) => l === `zfs unmount ${R}/a`)), 'an unmount was tried');
      expect(await mounted(`${R}/a`)).toBe(true);
      await pool.busy([]);
      await eventually(async () => !(await mounted(`${R}/a`)), `${R}/a is unmounted once no longer busy`);
    });

    it('init takes up results a dead process left mounted, and unmounts them once idle', async () => {
      const old = await pool.initStore({ unmountResults: false, children: ['home'] });
      await old.build(undefined, 'left', async () => {});
      await old.build(undefined, 'kept', async () => {});
      pool.zfs('unmount', `${R}/kept/home`);
      pool.zfs('unmount', `${R}/kept`);
      await pool.takeLog();
      const store = pool.store({ idleUnmountMs: GRACE, children: ['home'] });
      await store.init();
      expect((await pool.takeLog()).slice(-1)).toEqual(['zfs mount']);
      await eventually(async () => !(await mounted(`${R}/left`)), `${R}/left is unmounted`);
      expect(await pool.takeLog()).toEqual([`zfs unmount ${R}/left/home`, `zfs unmount ${R}/left`]);
      expect(
        Object.entries((await pool.readState()).datasets)
          .filter(([, d]) => d.mounted)
          .map(([n]) => n)
          .filter((n) => n.startsWith(`${R}/`)),
      ).toEqual([]);
    });

    it('delete destroys a mounted result and no idle unmount follows', async () => {
      const store = await pool.initStore({ idleUnmountMs: GRACE });
      await store.build(undefined, 'a', async () => {});
      await pool.takeLog();
      await store.delete('a');
      await new Promise((r) => setTimeout(r, GRACE * 2));
      expect(await pool.takeLog()).toEqual([`zfs get -H -o value clones ${R}/a@snap`, `zfs destroy -r ${R}/a`]);
    });

    it('refuses a grace that is not a positive number of milliseconds', () => {
      expect(() => pool.store({ idleUnmountMs: 0 })).toThrow(/idleUnmountMs must be a positive number of milliseconds, not 0/);
    });

    it("a result mounted while zfs-fuse dropped the command's socket (killed by SIGPIPE): the mount is sent again", async () => {
      const store = await pool.initStore({ idleUnmountMs: GRACE });
      await store.build(undefined, 'a', async (dir) => writeFile(join(dir, 'log'), 'built a'));
      await eventually(async () => !(await mounted(`${R}/a`)), 'a is unmounted');
      await pool.takeLog();
      await pool.sigpipeOnce('mount');
      expect(await logText(store, 'a')).toBe('built a');
      expect((await pool.takeLog()).filter((l) => l === `zfs mount ${R}/a`)).toHaveLength(2);
    });
  });

  describe('delete', () => {
    it('destroys a result with its snapshot', async () => {
      const store = await pool.initStore();
      await store.build(undefined, 'a', async () => {});
      await pool.takeLog();
      await store.delete('a');
      expect(await pool.takeLog()).toEqual([`zfs get -H -o value clones ${R}/a@snap`, `zfs destroy -r ${R}/a`]);
      expect(await store.exists('a')).toBe(false);
      await pool.takeLog();
      await store.delete('a');
      expect(await pool.takeLog()).toEqual([`zfs get -H -o value clones ${R}/a@snap`]);
    });

    it('refuses a result others were cloned from; leaves first, as prune does, works', async () => {
      const store = await pool.initStore({ children: ['home'] });
      await store.build(undefined, 'a', async () => {});
      await store.build('a', 'b', async () => {});
      await pool.takeLog();
      await expect(store.delete('a')).rejects.toThrow(`cannot delete result a from the zfs store tank/cairn: ${R}/b is a clone of it; delete those first`);
      expect(await pool.takeLog()).toEqual([`zfs get -H -o value clones ${R}/a@snap`]);
      await store.delete('b');
      await store.delete('a');
      expect(await pool.takeLog()).toEqual([
        `zfs get -H -o value clones ${R}/b@snap`,
        `zfs destroy -r ${R}/b`,
        `zfs get -H -o value clones ${R}/a@snap`,
        `zfs destroy -r ${R}/a`,
      ]);
      const state = await pool.readState();
      expect(Object.keys(state.datasets).filter((d) => d.startsWith(`${R}/`))).toEqual([]);
      expect(state.snapshots).toEqual({});
    });
  });

  describe('caches', () => {
    async function viewedFile(store: ZfsStore): Promise<string | undefined> {
      const view = await store.cache('opam', me);
      try {
        return await readFile(join(view.path, 'file'), 'utf8').catch(() => undefined);
      } finally {
        await view.release(false);
      }
    }

    it("first use: looks again under the cache's lock, creates the cache, chowns it through its mountpoint, snapshots it, clones a view", async () => {
      const store = await pool.initStore();
      const view = await store.cache('opam', me);
      expect(normalize.call(pool, view.path)).toBe('$MNT/cache-tmp/T-opam');
      expect(await pool.takeLog()).toEqual([
        `zfs get -Hp -o value guid ${C}/opam@snap`,
        `zfs get -Hp -o value guid ${C}/opam@snap`,
        `zfs create ${C}/opam`,
        `zfs snapshot ${C}/opam@snap`,
        `zfs get -Hp -o value guid ${C}/opam@snap`,
        `zfs clone ${C}/opam@snap ${CT}/T-opam`,
      ]);
      const owner = await stat(join(pool.mountRoot, 'cache', 'opam'));
      expect([owner.uid, owner.gid]).toEqual([uid, gid]);
      expect((await stat(view.path)).isDirectory()).toBe(true);
      await view.release(false);
    });

    it('escapes cache names', async () => {
      const store = await pool.initStore();
      const view = await store.cache('a/b c', me);
      expect(await pool.takeLog()).toContain(`zfs create ${C}/a.2fb.20c`);
      await view.release(false);
    });

    it('a second view clones the existing snapshot', async () => {
      const store = await pool.initStore();
      await (await store.cache('opam', me)).release(false);
      await pool.takeLog();
      const view = await store.cache('opam', me);
      expect(await pool.takeLog()).toEqual([`zfs get -Hp -o value guid ${C}/opam@snap`, `zfs clone ${C}/opam@snap ${CT}/T-opam`]);
      await view.release(false);
    });

    it('release with commit, generation unchanged: the view replaces the cache', async () => {
      const store = await pool.initStore();
      const view = await store.cache('opam', me);
      await writeFile(join(view.path, 'file'), 'v1');
      await pool.takeLog();
      await view.release(true);
      expect(await pool.takeLog()).toEqual([
        `zfs get -Hp -o value guid ${C}/opam@snap`,
        `zfs promote ${CT}/T-opam`,
        `zfs destroy ${C}/opam`,
        `zfs rename ${CT}/T-opam ${C}/opam`,
        `zfs rename ${C}/opam@snap ${C}/opam@old-G`,
        `zfs snapshot ${C}/opam@snap`,
        `zfs destroy -d ${C}/opam@old-G`,
      ]);
      expect(await viewedFile(store)).toBe('v1');
      const state = await pool.readState();
      expect(Object.keys(state.snapshots)).toEqual([`${C}/opam@snap`]);
      expect(await tempOf(CT)).toEqual([]);
      await expect(view.release(true)).rejects.toThrow(/already released/);
    });

    it('release with commit after another commit: the generation changed, the view is destroyed', async () => {
      const store = await pool.initStore();
      const first = await store.cache('opam', me);
      const second = await store.cache('opam', me);
      await writeFile(join(first.path, 'file'), 'first');
      await writeFile(join(second.path, 'file'), 'second');
      await first.release(true);
      // The old generation stays while the second view is cloned from it.
      expect((await pool.readState()).snapshots[`${C}/opam@old-${await oldGuid()}`]?.deferred).toBe(true);
      await pool.takeLog();
      await second.release(true);
      expect(await pool.takeLog()).toEqual([`zfs get -Hp -o value guid ${C}/opam@snap`, `zfs destroy -r ${CT}/T-opam`]);
      expect(await viewedFile(store)).toBe('first');
      // ...and goes with the last view.
      expect(Object.keys((await pool.readState()).snapshots)).toEqual([`${C}/opam@snap`]);
    });

    it('a commit whose snapshot rename zfs-fuse reported busy but did: its repeat finds @snap gone, @old there, and the commit completes', async () => {
      const store = await pool.initStore();
      const view = await store.cache('opam', me);
      await writeFile(join(view.path, 'file'), 'v1');
      await pool.takeLog();
      // The first rename (the view into place) is clean; the second is the snapshot's.
      await pool.doneButFailsOnce('rename', 1, `cannot rename '${C}/opam@snap': pool or dataset is busy`);
      await view.release(true);
      const log = await pool.takeLog();
      expect(log.filter((l) => l.startsWith(`zfs rename ${C}/opam@snap`))).toHaveLength(2);
      expect(log.slice(-2)).toEqual([`zfs snapshot ${C}/opam@snap`, `zfs destroy -d ${C}/opam@old-G`]);
      expect(await viewedFile(store)).toBe('v1');
    });

    async function oldGuid(): Promise<string> {
      const old = Object.keys((await pool.readState()).snapshots).find((s) => s.includes('@old-'));
      return old!.slice(old!.indexOf('@old-') + 5);
    }

    it('release without commit: the view is destroyed, the cache unchanged', async () => {
      const store = await pool.initStore();
      const view = await store.cache('opam', me);
      await writeFile(join(view.path, 'file'), 'discarded');
      await pool.takeLog();
      await view.release(false);
      expect(await pool.takeLog()).toEqual([`zfs destroy -r ${CT}/T-opam`]);
      expect(await viewedFile(store)).toBeUndefined();
    });

    it('deleteCache: moves the cache out of sight; views in use keep working', async () => {
      const store = await pool.initStore();
      const view = await store.cache('opam', me);
      await pool.takeLog();
      await store.deleteCache('opam');
      expect(await pool.takeLog()).toEqual([`zfs rename ${C}/opam ${CT}/T-deleted`, `zfs destroy -r ${CT}/T-deleted`]);
      await writeFile(join(view.path, 'file'), 'late');
      await view.release(true);
      // The view pinned the deleted cache: its release destroys it too.
      expect(await pool.takeLog()).toEqual([`zfs get -Hp -o value guid ${C}/opam@snap`, `zfs destroy -r ${CT}/T-opam`, `zfs destroy -r ${CT}/T-deleted`]);
      expect(await viewedFile(store)).toBeUndefined();
      await store.deleteCache('never-made');
    });

    it('refuses a Windows user', async () => {
      const store = await pool.initStore();
      await expect(store.cache('opam', { kind: 'windows', name: 'ContainerUser' })).rejects.toThrow(/belongs to a unix user/);
    });
  });

  it('df: bytes from zfs get used,available of the root dataset; no inode counts', async () => {
    const store = await pool.initStore();
    await pool.setSpace(3 * 2 ** 30, 7 * 2 ** 30);
    expect(await store.df()).toEqual({ bytesFree: 7 * 2 ** 30, bytesTotal: 10 * 2 ** 30, inodesFree: 0, inodesTotal: 0 });
    expect(await pool.takeLog()).toEqual(['zfs get -Hp -o value used,available tank/cairn']);
  });

  it('zfsStoreOptions reads POOL[/DATASET]', () => {
    expect(zfsStoreOptions('tank')).toEqual({ pool: 'tank' });
    expect(zfsStoreOptions('tank/builds/cairn')).toEqual({ pool: 'tank', root: 'tank/builds/cairn' });
    expect(zfsStoreOptions('tank/builds/')).toEqual({ pool: 'tank', root: 'tank/builds' });
    expect(() => zfsStoreOptions('')).toThrow(/names no ZFS pool/);
    expect(new ZfsStore(zfsStoreOptions('tank')).mountRoot).toBe('/tank/cairn');
    expect(() => new ZfsStore(zfsStoreOptions('tank/a b'))).toThrow(/is not a ZFS dataset name/);
  });

  it('a missing zfs binary gives an error naming it', async () => {
    const missing = join(pool.dir, 'bin', 'no-such-zfs');
    const store = pool.store({ commands: { zpool: pool.commands.zpool, zfs: missing } });
    await expect(store.init()).rejects.toThrow(`cannot run ${JSON.stringify(missing)}: no such command; the ZFS store needs ZFS's tools`);
    const noZpool = pool.store({ commands: { zfs: pool.commands.zfs, zpool: join(pool.dir, 'bin', 'no-such-zpool') } });
    await expect(noZpool.init()).rejects.toThrow(/cannot run ".*no-such-zpool": no such command/);
  });
});
