import { execFile, spawn } from 'node:child_process';
import { appendFile, chmod, chown, lchown, lstat, mkdir, open, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mountsUnder, type TestFilesystem } from '../../../test/support/filesystems.js';
import { DiskLimitError, DiskLimitUnsupportedError, parseStoreSpec, StoreFullError, type Store } from '../src/index.js';
import { Zfs } from '../src/zfs.js';
import type { StoreFixture } from './store-fixtures.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const USER = { kind: 'unix', uid: 1000, gid: 1001 } as const;
const CRASHING_BUILD = fileURLToPath(new URL('./crashing-build.mjs', import.meta.url));
const OPEN_STORE = fileURLToPath(new URL('./open-store.mjs', import.meta.url));

/**
 * The `--store` value of a store at `root`. A ZFS store is named by its dataset, which a
 * test pool (test/support/zfs.ts) mounts at `/DATASET`.
 */
export const storeSpec = (kind: string, root: string) => (kind === 'zfs' ? `zfs:${root.replace(/^\/+/, '')}` : `${kind}:${root}`);

/** A store as a process opens it: parsed from `--store`, then init. */
export async function openStore(kind: string, root: string): Promise<Store> {
  const store = parseStoreSpec(storeSpec(kind, root));
  await store.init();
  return store;
}

export const rootfs = (dir: string, ...path: string[]) => join(dir, 'rootfs', ...path);

/** A published result's log (Store.log) as text. */
export async function logText(store: Store, id: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of store.log(id)) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

export async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Nothing of a build or a cache view outlives it: no temps, no mounts. A ZFS store's
 * datasets are its own mounts: there, only its four folders, caches and results (mounted
 * on demand, unmounted once idle) may be.
 */
export async function expectNothingLeft(root: string, kind?: string): Promise<void> {
  expect(await readdir(join(root, 'result-tmp'))).toEqual([]);
  expect(await readdir(join(root, 'cache-tmp'))).toEqual([]);
  const own = ['', '/result', '/result-tmp', '/cache', '/cache-tmp'].map((sub) => `${root}${sub}`);
  const mounts = await mountsUnder(root);
  const inside = (folder: string, m: string) => m.startsWith(`${root}/${folder}/`) && !m.slice(`${root}/${folder}/`.length).includes('/');
  expect(kind === 'zfs' ? mounts.filter((m) => !own.includes(m) && !inside('result', m) && !inside('cache', m)) : mounts).toEqual([]);
}

async function writeBytes(path: string, bytes: number): Promise<void> {
  const file = await open(path, 'w');
  try {
    const chunk = Buffer.alloc(MiB, 1);
    for (let written = 0; written < bytes; written += chunk.length) await file.write(chunk);
  } finally {
    await file.close();
  }
}

/**
 * The behaviour every store driver must have, run against each on a real filesystem.
 * Each test gets a fresh store in its own directory of the fixture's filesystem.
 */
export function describeStoreBehaviour(fixture: StoreFixture): void {
  describe(`the ${fixture.kind} store`, () => {
    let fs: TestFilesystem;
    let root: string;
    let store: Store;
    let stores = 0;
    const cleanups: (() => Promise<void>)[] = [];

    beforeAll(async () => {
      fs = await fixture.filesystem();
    });
    afterAll(async () => {
      await fs?.cleanup();
    });
    beforeEach(async () => {
      stores += 1;
      root = join(fs.path, `store-${stores}`);
      store = await openStore(fixture.kind, root);
    });
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    const read = (id: string, path: string) => store.withRootfs(id, (r) => readFile(join(r, path), 'utf8'));
    const list = (id: string) => store.withRootfs(id, async (r) => (await readdir(r)).sort());

    it('builds a first result on an empty rootfs and publishes it with the files written next to it', async () => {
      await store.build(undefined, 'base', async (dir) => {
        expect(await readdir(rootfs(dir))).toEqual([]);
        await mkdir(rootfs(dir, 'etc'));
        await writeFile(rootfs(dir, 'etc', 'motd'), 'hello\n');
        await writeFile(join(dir, 'log'), 'base log\n');
      });
      expect(await store.exists('base')).toBe(true);
      expect(await logText(store, 'base')).toBe('base log\n');
      expect(await read('base', 'etc/motd')).toBe('hello\n');
      await expectNothingLeft(root, fixture.kind);
    });

    it("builds a child on its parent's files, and what the child changes stays its own", async () => {
      await store.build(undefined, 'parent', async (dir) => {
        for (const name of ['kept', 'replaced', 'removed']) await writeFile(rootfs(dir, name), `parent ${name}`);
        await mkdir(rootfs(dir, 'dir'));
        await writeFile(rootfs(dir, 'dir', 'inner'), 'inner');
        await writeFile(join(dir, 'log'), 'parent log');
      });
      await store.build('parent', 'child', async (dir) => {
        expect((await readdir(rootfs(dir))).sort()).toEqual(['dir', 'kept', 'removed', 'replaced']);
        expect(await readFile(rootfs(dir, 'dir', 'inner'), 'utf8')).toBe('inner');
        expect(await exists(join(dir, 'log'))).toBe(false);
        // Replaced (unlinked, then written anew), not written in place: safe in hard-link mode too.
        await rm(rootfs(dir, 'replaced'));
        await writeFile(rootfs(dir, 'replaced'), 'child replaced');
        await rm(rootfs(dir, 'removed'));
        await rm(rootfs(dir, 'dir'), { recursive: true });
        await writeFile(rootfs(dir, 'added'), 'child added');
      });
      expect(await list('child')).toEqual(['added', 'kept', 'replaced']);
      expect(await read('child', 'replaced')).toBe('child replaced');
      expect(await list('parent')).toEqual(['dir', 'kept', 'removed', 'replaced']);
      expect(await read('parent', 'replaced')).toBe('parent replaced');
      expect(await read('parent', 'dir/inner')).toBe('inner');
    });

    const inPlace = fixture.sharesInodesWithParent
      ? "lets a child's in-place writes, chmod and chown reach its parent: they share inodes (the documented risk)"
      : "keeps a child's in-place writes, chmod and chown out of its parent";
    it(inPlace, async () => {
      await store.build(undefined, 'parent', async (dir) => {
        await writeFile(rootfs(dir, 'file'), 'original');
        await chmod(rootfs(dir, 'file'), 0o644);
      });
      await store.build('parent', 'child', async (dir) => {
        await appendFile(rootfs(dir, 'file'), ' + appended');
        await chmod(rootfs(dir, 'file'), 0o600);
        await chown(rootfs(dir, 'file'), 1000, 1000);
      });
      const described = (id: string) =>
        store.withRootfs(id, async (r) => {
          const s = await stat(join(r, 'file'));
          return { text: await readFile(join(r, 'file'), 'utf8'), mode: s.mode & 0o7777, owner: [s.uid, s.gid] };
        });
      const original = { text: 'original', mode: 0o644, owner: [0, 0] };
      const changed = { text: 'original + appended', mode: 0o600, owner: [1000, 1000] };
      expect(await described('child')).toEqual(changed);
      expect(await described('parent')).toEqual(fixture.sharesInodesWithParent ? changed : original);
    });

    it('keeps owners and modes as written, through publishing and into children', async () => {
      const owners = (r: string) =>
        Promise.all(
          ['', 'home', 'home/file', 'home/link'].map(async (path) => {
            const s = await lstat(join(r, path));
            return [path, s.uid, s.gid, s.mode & 0o7777];
          }),
        );
      const written = [
        ['', 1000, 1000, 0o750],
        ['home', 1000, 1001, 0o700],
        ['home/file', 1000, 1001, 0o640],
        ['home/link', 1000, 1001, 0o777],
      ];
      await store.build(undefined, 'owned', async (dir) => {
        await chown(rootfs(dir), 1000, 1000);
        await chmod(rootfs(dir), 0o750);
        await mkdir(rootfs(dir, 'home'));
        await chown(rootfs(dir, 'home'), 1000, 1001);
        await chmod(rootfs(dir, 'home'), 0o700);
        await writeFile(rootfs(dir, 'home', 'file'), 'x');
        await chown(rootfs(dir, 'home', 'file'), 1000, 1001);
        await chmod(rootfs(dir, 'home', 'file'), 0o640);
        await symlink('file', rootfs(dir, 'home', 'link'));
        await lchown(rootfs(dir, 'home', 'link'), 1000, 1001);
      });
      expect(await store.withRootfs('owned', owners)).toEqual(written);
      await store.build('owned', 'owned-child', async (dir) => {
        expect(await owners(rootfs(dir))).toEqual(written);
      });
      expect(await store.withRootfs('owned-child', owners)).toEqual(written);
    });

    it("removes everything when fn throws, and rethrows fn's error", async () => {
      const failure = new Error('the step failed');
      await expect(
        store.build(undefined, 'failed', async (dir) => {
          await writeFile(rootfs(dir, 'partial'), 'x');
          throw failure;
        }),
      ).rejects.toBe(failure);
      await store.build(undefined, 'base', async () => undefined);
      await expect(
        store.build('base', 'failed-child', async (dir) => {
          await writeFile(rootfs(dir, 'partial'), 'x');
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await store.exists('failed')).toBe(false);
      expect(await store.exists('failed-child')).toBe(false);
      await expectNothingLeft(root, fixture.kind);
    });

    it('publishes atomically: a reader never sees a half-built result', async () => {
      let inFn!: () => void;
      const started = new Promise<void>((resolve) => (inFn = resolve));
      let openGate!: () => void;
      const gate = new Promise<void>((resolve) => (openGate = resolve));
      const building = store.build(undefined, 'atomic', async (dir) => {
        for (let i = 0; i < 20; i++) await writeFile(rootfs(dir, `f${i}`), `${i}`);
        inFn();
        await gate;
        for (let i = 20; i < 40; i++) await writeFile(rootfs(dir, `f${i}`), `${i}`);
      });
      await started;
      expect(await store.exists('atomic')).toBe(false);
      expect(await exists(join(root, 'result', 'atomic'))).toBe(false);
      const seen: number[] = [];
      let built = false;
      const reader = (async () => {
        while (!built) {
          if (await store.exists('atomic')) seen.push(await store.withRootfs('atomic', async (r) => (await readdir(r)).length));
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      openGate();
      await building;
      built = true;
      await reader;
      expect(seen.filter((n) => n !== 40)).toEqual([]);
      expect((await list('atomic')).length).toBe(40);
    });

    it('lets one of two concurrent builds of an ID publish; the other rejects and leaves nothing', async () => {
      const outcomes = await Promise.allSettled(
        ['first', 'second'].map((who) =>
          store.build(undefined, 'raced', async (dir) => {
            await writeFile(rootfs(dir, 'who'), who);
            await new Promise((resolve) => setTimeout(resolve, 100));
          }),
        ),
      );
      const winners = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [i === 0 ? 'first' : 'second'] : []));
      const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []));
      expect(winners).toHaveLength(1);
      expect(failures).toEqual([expect.stringMatching(/already has a result raced/)]);
      expect(await read('raced', 'who')).toBe(winners[0]);
      await expectNothingLeft(root, fixture.kind);
    });

    it('refuses to build an ID that exists, or on a parent that does not, without running fn', async () => {
      await store.build(undefined, 'dup', async (dir) => writeFile(rootfs(dir, 'v'), 'first'));
      let ran = false;
      const fn = async () => {
        ran = true;
      };
      await expect(store.build(undefined, 'dup', fn)).rejects.toThrow(/already has a result dup/);
      await expect(store.build('no-such-parent', 'orphan', fn)).rejects.toThrow(/has no result no-such-parent/);
      expect(ran).toBe(false);
      expect(await read('dup', 'v')).toBe('first');
      expect(await store.exists('orphan')).toBe(false);
      await expectNothingLeft(root, fixture.kind);
    });

    it('init removes what a killed build left behind, unmounting first', async () => {
      await store.build(undefined, 'base', async (dir) => writeFile(rootfs(dir, 'base-file'), 'base'));
      const child = spawn(process.execPath, ['--import', 'tsx', CRASHING_BUILD, storeSpec(fixture.kind, root), 'base', 'crashed'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      cleanups.push(async () => {
        child.kill('SIGKILL');
        await exited;
      });
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (data: Buffer) => {
          out += String(data);
          if (out.includes('ready')) resolve();
        });
        void exited.then(() => reject(new Error(`crashing-build.mjs exited before it was ready: ${out}`)));
      });
      expect(await readdir(join(root, 'result-tmp'))).not.toEqual([]);
      expect(await readdir(join(root, 'cache-tmp'))).not.toEqual([]);
      expect((await mountsUnder(root)).length > 0).toBe(fixture.mountsBuilds);
      process.kill(child.pid!, 'SIGKILL');
      await exited;

      const restarted = await openStore(fixture.kind, root);
      await expectNothingLeft(root, fixture.kind);
      expect(await restarted.exists('crashed')).toBe(false);
      await restarted.build('base', 'crashed', async (dir) => {
        expect(await readdir(rootfs(dir))).toEqual(['base-file']);
      });
      expect(await restarted.exists('crashed')).toBe(true);
    });

    it("two processes opening the store at once remove a dead process's temps once, and keep a live one's", async () => {
      const start = Number((await readFile('/proc/self/stat', 'utf8')).split(') ')[1]!.split(' ')[19]);
      // A dead pid (old-style name), and this very pid with another start time (a reused pid).
      const dead = ['3999990-1-x', '3999990-2-x', '3999990-3-x', `${process.pid}.${start + 1}-1-y`];
      const live = `${process.pid}.${start}-999999-z`;
      for (const name of [...dead, live]) {
        const path = join(root, 'result-tmp', name);
        if (fixture.kind === 'btrfs') await run('btrfs', ['subvolume', 'create', path]);
        else if (fixture.kind === 'zfs') await run('zfs', ['create', storeSpec('zfs', path).slice('zfs:'.length)]);
        else await mkdir(join(path, 'rootfs'), { recursive: true });
      }
      const opens = [0, 1].map(
        () =>
          new Promise<{ code: number | null; out: string }>((resolve) => {
            execFile(process.execPath, ['--import', 'tsx', OPEN_STORE, storeSpec(fixture.kind, root)], (error, stdout, stderr) =>
              resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: stdout + stderr }),
            );
          }),
      );
      for (const r of await Promise.all(opens)) expect(r, r.out).toMatchObject({ code: 0 });
      expect(await readdir(join(root, 'result-tmp'))).toEqual([live]);
      if (fixture.kind === 'btrfs') await run('btrfs', ['subvolume', 'delete', join(root, 'result-tmp', live)]);
      else if (fixture.kind === 'zfs') await new Zfs().destroy(storeSpec('zfs', join(root, 'result-tmp', live)).slice('zfs:'.length));
      else await rm(join(root, 'result-tmp', live), { recursive: true });
    });

    it('deletes a result; deleting a missing one is not an error', async () => {
      await store.build(undefined, 'doomed', async (dir) => writeFile(rootfs(dir, 'v'), 'old'));
      await store.delete('doomed');
      expect(await store.exists('doomed')).toBe(false);
      await expect(list('doomed')).rejects.toThrow(/has no result doomed/);
      await store.delete('doomed');
      await store.delete('never-built');
      await store.build(undefined, 'doomed', async (dir) => writeFile(rootfs(dir, 'v'), 'new'));
      expect(await read('doomed', 'v')).toBe('new');
      await expectNothingLeft(root, fixture.kind);
    });

    it("shows a result's whole stack in withRootfs, and cleans up when the callback throws", async () => {
      await store.build(undefined, 'l1', async (dir) => {
        await writeFile(rootfs(dir, 'a'), 'l1');
        await writeFile(rootfs(dir, 'b'), 'l1');
      });
      await store.build('l1', 'l2', async (dir) => {
        await writeFile(rootfs(dir, 'c'), 'l2');
        await rm(rootfs(dir, 'a'));
      });
      await store.build('l2', 'l3', async (dir) => {
        await mkdir(rootfs(dir, 'd'));
        await rm(rootfs(dir, 'b'));
        await writeFile(rootfs(dir, 'b'), 'l3');
      });
      expect(await list('l3')).toEqual(['b', 'c', 'd']);
      expect(await read('l3', 'b')).toBe('l3');
      expect(await read('l3', 'c')).toBe('l2');
      expect(await list('l1')).toEqual(['a', 'b']);
      await expect(store.withRootfs('l3', async () => Promise.reject(new Error('the reader failed')))).rejects.toThrow('the reader failed');
      await expectNothingLeft(root, fixture.kind);
    });

    describe('caches', () => {
      it("gives a first view that is empty and owned by the step's user", async () => {
        const view = await store.cache('opam', USER);
        expect(await readdir(view.path)).toEqual([]);
        const s = await stat(view.path);
        expect([s.uid, s.gid]).toEqual([USER.uid, USER.gid]);
        await view.release(false);
        await expectNothingLeft(root, fixture.kind);
      });

      it('makes a committed view the cache the next view sees, and discards an uncommitted one', async () => {
        const first = await store.cache('apt', USER);
        await writeFile(join(first.path, 'pkg'), 'v1');
        await first.release(true);
        const second = await store.cache('apt', USER);
        expect(await readFile(join(second.path, 'pkg'), 'utf8')).toBe('v1');
        // In place, as a build tool would: the shared cache must not see it.
        await appendFile(join(second.path, 'pkg'), ' changed');
        await writeFile(join(second.path, 'extra'), 'x');
        await second.release(false);
        const third = await store.cache('apt', USER);
        expect(await readdir(third.path)).toEqual(['pkg']);
        expect(await readFile(join(third.path, 'pkg'), 'utf8')).toBe('v1');
        expect((await stat(third.path)).uid).toBe(USER.uid);
        await third.release(false);
        await expectNothingLeft(root, fixture.kind);
      });

      it('lets the first of two views of one generation commit and discards the other, across processes too', async () => {
        // A second store object on the same root shares nothing in memory, like a second process.
        const other = await openStore(fixture.kind, root);
        for (const [round, order] of ['ab', 'ba', 'ab', 'ba', 'ab', 'ba'].entries()) {
          const views = { a: await store.cache('shared', USER), b: await other.cache('shared', USER) };
          for (const [who, view] of Object.entries(views)) {
            expect(await readdir(view.path)).toEqual(round === 0 ? [] : ['winner']);
            await writeFile(join(view.path, 'winner'), `${who}${round}`);
          }
          for (const who of order) await views[who as 'a' | 'b'].release(true);
          const next = await other.cache('shared', USER);
          expect(await readFile(join(next.path, 'winner'), 'utf8')).toBe(`${order[0]}${round}`);
          await next.release(false);
        }
        await expectNothingLeft(root, fixture.kind);
      });

      it('keeps caches apart whatever their names', async () => {
        const names = ['a/b', 'a_2fb', 'a.2fb', 'a.2f', 'a', 'a/', '..', '.', 'é', 'with space'];
        for (const name of names) {
          const view = await store.cache(name, USER);
          expect(await readdir(view.path)).toEqual([]);
          await writeFile(join(view.path, 'name'), name);
          await view.release(true);
        }
        for (const name of names) {
          const view = await store.cache(name, USER);
          expect(await readFile(join(view.path, 'name'), 'utf8')).toBe(name);
          await view.release(false);
        }
        const dirs = await readdir(join(root, 'cache'));
        expect(dirs).toHaveLength(names.length);
        for (const dir of dirs) expect(dir).toMatch(/^[A-Za-z0-9_-]*(\.[0-9a-f]{2}[A-Za-z0-9_-]*)*$/);
        await expectNothingLeft(root, fixture.kind);
      });

      it("keeps each trust domain's cache of a name apart, from the others and from the unscoped one", async () => {
        const domains = ['client-alice', 'client-bob', undefined, 'a', 'a..b'];
        for (const domain of domains) {
          const view = await store.cache('npm', USER, domain);
          expect(await readdir(view.path), String(domain)).toEqual([]);
          await writeFile(join(view.path, 'owner'), String(domain));
          await view.release(true);
        }
        // A name that looks like another domain's key is still its own cache.
        const lookalike = await store.cache('a..npm', USER);
        expect(await readdir(lookalike.path)).toEqual([]);
        await lookalike.release(false);
        for (const domain of domains) {
          const view = await store.cache('npm', USER, domain);
          expect(await readFile(join(view.path, 'owner'), 'utf8')).toBe(String(domain));
          await view.release(false);
        }
        await store.deleteCache('npm', 'client-bob');
        const bob = await store.cache('npm', USER, 'client-bob');
        expect(await readdir(bob.path)).toEqual([]);
        await bob.release(false);
        const alice = await store.cache('npm', USER, 'client-alice');
        expect(await readFile(join(alice.path, 'owner'), 'utf8')).toBe('client-alice');
        await alice.release(false);
        await expectNothingLeft(root, fixture.kind);
      });

      it('deletes a cache: the next view starts empty, and views in use keep working but cannot commit', async () => {
        const seed = await store.cache('doomed', USER);
        await writeFile(join(seed.path, 'data'), 'old');
        await seed.release(true);
        const old = await store.cache('doomed', USER);
        await store.deleteCache('doomed');
        const fresh = await store.cache('doomed', { kind: 'unix', uid: 2000, gid: 2000 });
        expect(await readdir(fresh.path)).toEqual([]);
        expect((await stat(fresh.path)).uid).toBe(2000);
        expect(await readFile(join(old.path, 'data'), 'utf8')).toBe('old');
        await writeFile(join(old.path, 'late'), 'x');
        await old.release(true);
        await fresh.release(false);
        const after = await store.cache('doomed', USER);
        expect(await readdir(after.path)).toEqual([]);
        await after.release(false);
        await store.deleteCache('never-made');
        await expectNothingLeft(root, fixture.kind);
      });
    });

    it('reports free space as df does', async () => {
      const free = await store.df();
      const [size, avail, itotal, iavail] = (await run('df', ['-B1', '--output=size,avail,itotal,iavail', root])).stdout
        .split('\n')[1]!
        .trim()
        .split(/\s+/)
        .map(Number);
      if (fixture.kind === 'zfs') {
        // statfs counts the root dataset's own blocks; the store counts its datasets too.
        // ZFS makes inodes on demand: the store reports none.
        expect(Math.abs(free.bytesTotal - size!)).toBeLessThan(size! / 20);
        expect(free.inodesTotal).toBe(0);
        return;
      }
      expect(free.bytesTotal).toBe(size);
      expect(free.inodesTotal).toBe(itotal);
      expect(free.bytesFree).toBeGreaterThan(0);
      expect(free.bytesFree).toBeLessThanOrEqual(free.bytesTotal);
      // Other tests write to the same filesystem meanwhile: free space is close, not equal.
      expect(Math.abs(free.bytesFree - avail!)).toBeLessThan(free.bytesTotal / 20);
      expect(free.inodesFree).toBeLessThanOrEqual(free.inodesTotal);
      expect(Math.abs(free.inodesFree - iavail!)).toBeLessThanOrEqual(Math.max(1000, free.inodesTotal / 20));
    });

    it('fails a build that fills the disk with StoreFullError, publishes nothing, and builds again once space is freed', async () => {
      const small = await fixture.smallFilesystem();
      cleanups.push(() => small.cleanup());
      const fullRoot = join(small.path, 'store');
      const full = await openStore(fixture.kind, fullRoot);
      const { bytesFree } = await full.df();
      await full.build(undefined, 'filler', async (dir) => writeBytes(rootfs(dir, 'filler'), bytesFree / 2));

      // Node's writes fail with ENOSPC...
      const byWrite = await full.build(undefined, 'overflow', async (dir) => writeBytes(rootfs(dir, 'big'), Infinity)).catch((e: unknown) => e);
      expect(byWrite).toBeInstanceOf(StoreFullError);
      expect((byWrite as Error).message).toMatch(/store at .* is full .*nothing was published.*ENOSPC/);
      // ...while a sandboxed command's error has only an exit status: the store sees the full disk.
      const byCommand = await full
        .build(undefined, 'overflow', async (dir) => {
          await run('sh', ['-c', 'cat /dev/zero > "$1" 2>/dev/null', 'sh', rootfs(dir, 'big')]);
        })
        .catch((e: unknown) => e);
      expect(byCommand).toBeInstanceOf(StoreFullError);
      expect(await full.exists('overflow')).toBe(false);
      await expectNothingLeft(fullRoot, fixture.kind);

      await full.delete('filler');
      await full.build(undefined, 'after', async (dir) => writeBytes(rootfs(dir, 'big'), bytesFree * 0.7));
      expect(await full.exists('after')).toBe(true);
      await expectNothingLeft(fullRoot, fixture.kind);
    });

    const diskLimitFilesystem = fixture.diskLimitFilesystem;
    if (diskLimitFilesystem) {
      it('holds a build to its disk limit: past it, DiskLimitError naming the limit, nothing published, and the store builds on', async () => {
        const limited = await diskLimitFilesystem();
        cleanups.push(() => limited.cleanup());
        const limitedRoot = join(limited.path, 'store');
        const quotaStore = await openStore(fixture.kind, limitedRoot);
        const disk = { diskBytes: 64 * MiB };
        // A parent bigger than the limit: only what the step adds counts.
        await quotaStore.build(undefined, 'base', async (dir) => writeBytes(rootfs(dir, 'base'), 80 * MiB));
        await quotaStore.build('base', 'within', async (dir) => writeBytes(rootfs(dir, 'small'), 32 * MiB), disk);
        expect(await quotaStore.exists('within')).toBe(true);

        // Node's writes fail with EDQUOT (errno 122, which Node has no name for)...
        const byWrite = await quotaStore.build('base', 'over', async (dir) => writeBytes(rootfs(dir, 'big'), Infinity), disk).catch((e: unknown) => e);
        expect(byWrite).toBeInstanceOf(DiskLimitError);
        expect((byWrite as Error).message).toBe('disk limit 64 MiB reached; nothing was published');
        expect(((byWrite as Error).cause as NodeJS.ErrnoException).errno).toBe(-constants.errno.EDQUOT);
        // ...while a sandboxed command's error has only an exit status: the store sees its quota used up.
        const byCommand = await quotaStore
          .build(
            'base',
            'over',
            async (dir) => {
              await run('sh', ['-c', 'cat /dev/zero > "$1" 2>/dev/null', 'sh', rootfs(dir, 'big')]);
            },
            disk,
          )
          .catch((e: unknown) => e);
        expect(byCommand).toBeInstanceOf(DiskLimitError);
        expect((byCommand as Error).message).toMatch(/^disk limit 64 MiB reached; nothing was published: Command failed: sh -c/);
        expect(await quotaStore.exists('over')).toBe(false);
        // A step failing for its own reasons, well within the limit, fails with its own error.
        const broken = await quotaStore.build('base', 'broken', async () => Promise.reject(new Error('the step failed')), disk).catch((e: unknown) => e);
        expect(broken).not.toBeInstanceOf(DiskLimitError);
        expect((broken as Error).message).toBe('the step failed');
        await expectNothingLeft(limitedRoot, fixture.kind);

        // The store itself has room: a build without the limit writes past it.
        await quotaStore.build('base', 'after', async (dir) => writeBytes(rootfs(dir, 'big'), 96 * MiB));
        expect(await quotaStore.exists('after')).toBe(true);
        await expectNothingLeft(limitedRoot, fixture.kind);
      });
    }

    const refusal = fixture.diskLimitRefusal;
    if (refusal) {
      it('refuses a disk limit where it has no quotas, naming the store and why, before the build starts', async () => {
        await expect(store.checkDiskLimit()).rejects.toThrow(refusal);
        let ran = false;
        const error = await store
          .build(
            undefined,
            'limited',
            async () => {
              ran = true;
            },
            { diskBytes: 64 * MiB },
          )
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(DiskLimitUnsupportedError);
        expect((error as Error).message).toMatch(refusal);
        expect(ran).toBe(false);
        expect(await store.exists('limited')).toBe(false);
        await expectNothingLeft(root, fixture.kind);
      });
    }
  });
}
