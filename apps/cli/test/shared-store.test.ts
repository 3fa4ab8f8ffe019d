import { execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { baseId } from '@cairn/hashing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliStore, follow, IMAGE, type CliStore } from './cli-process.js';

/**
 * Many `cairn` processes on one store at once (docs/engine.md, "Many processes on one
 * store"): every process here is a separate OS process, as users and CI runners are.
 */
describe.each(['overlayfs', 'btrfs', 'zfs'] as const)('many cairn processes on one %s store', (kind) => {
  let store: CliStore;
  beforeAll(async () => {
    store = await cliStore(kind);
  });
  afterAll(async () => {
    await store?.cleanup();
  });

  it('a running build survives df, prune and healthcheck on the same store', async () => {
    // Long enough for the others to run beside it (zfs-fuse makes them slow: a FUSE daemon).
    const seconds = kind === 'zfs' ? 30 : 5;
    const file = await store.specFile('slow.spec', `(run (shell "echo started-slow; sleep ${seconds}; echo finished-slow"))`);
    const child = store.start(['build', '-f', file, store.dir]);
    const build = { ...follow(child), pid: child.pid };
    await build.waitFor('started-slow');
    const others = [['df'], ['prune', '--before', '0s'], ['healthcheck'], ['df', '--json']];
    for (const args of others) {
      const r = await store.cairn(args);
      expect(r.status, `cairn ${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    // The base image the build stands on is leased: delete refuses, naming the holder.
    const del = await store.cairn(['delete', baseId(IMAGE)]);
    expect(del.status).toBe(1);
    expect(del.stderr).toContain(`snapshot ${baseId(IMAGE)} is in use by a running build (process ${build.pid})`);
    const r = await build.done;
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('started-slow\nfinished-slow\n');
  });

  it('two processes starting the same new step run it once, and both show its output', async () => {
    const marker = `dedup-${kind}-${Date.now()}`;
    const file = await store.specFile('dedup.spec', `(run (shell "echo ${marker}-start; sleep 2; echo ${marker}-end"))`);
    const [a, b] = await Promise.all([0, 1].map(() => store.cairn(['build', '-f', file, store.dir, '--json'])));
    for (const r of [a!, b!]) {
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain(`${marker}-start\n${marker}-end\n`);
    }
    const [ra, rb] = [JSON.parse(a!.stdout), JSON.parse(b!.stdout)] as { id: string; steps: { cached: boolean }[] }[];
    expect(ra!.id).toBe(rb!.id);
    // The run step: built by one, a cache hit (with the log replayed) for the other.
    expect([ra!.steps[1]!.cached, rb!.steps[1]!.cached].sort()).toEqual([false, true]);
  });

  it("a dead process's leftover temps are removed once, by whichever of two starting processes gets each", async () => {
    const temps = join(store.path, 'result-tmp');
    for (const t of [1, 2, 3]) {
      const path = join(temps, `3999990-${t}-x`);
      if (kind === 'btrfs') execFileSync('btrfs', ['subvolume', 'create', path], { stdio: 'ignore' });
      else if (kind === 'zfs') execFileSync('zfs', ['create', path.slice(1)], { stdio: 'ignore' });
      else execFileSync('mkdir', ['-p', join(path, 'rootfs', 'etc')]);
    }
    const [a, b] = await Promise.all([store.cairn(['df']), store.cairn(['df'])]);
    expect(a!.status, a!.stderr).toBe(0);
    expect(b!.status, b!.stderr).toBe(0);
    expect((await readdir(temps)).filter((n) => n.startsWith('3999990-'))).toEqual([]);
  });
});
