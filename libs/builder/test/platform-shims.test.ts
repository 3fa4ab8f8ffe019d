import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fetcher } from '@cairn/fetcher';
import { CancelledError, JailSandbox, MacosSandbox, type Sandbox } from '@cairn/sandbox';
import { baseId } from '@cairn/hashing';
import { parseSpec } from '@cairn/spec';
import type { ZfsStore } from '@cairn/store';
import { describe, expect, it, onTestFinished } from 'vitest';
import { line, makeShims, type ShimRule } from '../../sandbox/test/jail-shims.js';
import { C, CT, R, RT, ShimmedPool } from '../../store/test/zfs-pool.js';
import { BuildError, Builder } from '../src/index.js';

// The engine on the FreeBSD (ZFS store + jail sandbox) and macOS (ZFS store + macOS
// sandbox) backends. None of them can run here: `zfs`, `jail`, `sudo`... are the
// recording shims of libs/store/test/fixtures and libs/sandbox/test/fixtures, and these
// tests check the exact command sequences the Builder causes, for a step that succeeds,
// one that fails, one cancelled, cache releases, prune and delete.

/** A stand-in for an image source: the base image is a tree with the macOS home and prefix. */
class TreeFetcher implements Fetcher {
  readonly kind = 'tree';
  async fetch(_image: string, rootfs: string): Promise<{ env: [string, string][]; digest: string }> {
    for (const sub of ['bin', 'home', 'brew', 'root']) await mkdir(join(rootfs, sub), { recursive: true });
    await writeFile(join(rootfs, 'bin', 'sh'), 'not a real shell');
    return { env: [['PATH', '/bin']], digest: `sha256:${'0'.repeat(64)}` };
  }
  resolve(): Promise<string> {
    return Promise.resolve(`sha256:${'0'.repeat(64)}`);
  }
}

type Platform = 'jail' | 'macos';
const STEP_CMD: Record<Platform, string> = { jail: 'jexec', macos: 'sudo' };
/** A rule argument only the step's own command has. */
const STEP_MATCH: Record<Platform, string | undefined> = { jail: undefined, macos: '-i' };
const CACHE_TARGET: Record<Platform, string> = { jail: '/root/.opam', macos: '/Users/mac1001/.opam' };

async function setup(platform: Platform, rules: readonly ShimRule[] = []) {
  const pool = await ShimmedPool.create();
  const dir = await mkdtemp(join(tmpdir(), `cairn-${platform}-engine-`));
  onTestFinished(async () => {
    store.unmountIdle();
    builder.close();
    // A killed step's last shim calls may still be writing their state (ENOTEMPTY, seen in a run): try again.
    await rm(pool.dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  });
  const shims = await makeShims(platform === 'jail' ? ['jail', 'jexec', 'jls', 'mount', 'umount'] : ['sudo', 'dscl']);
  // On macOS `sudo` also makes the links: a rule for the step itself must match only the step.
  await shims.setRules(
    rules.map((r) => ({ ...r, ...(r.cmd === STEP_CMD[platform] && r.match === undefined && STEP_MATCH[platform] ? { match: STEP_MATCH[platform] } : {}) })),
  );
  const store: ZfsStore = pool.store({ idleUnmountMs: 60_000 });
  const p = shims.paths;
  const sandbox: Sandbox =
    platform === 'jail'
      ? new JailSandbox({ stateDir: join(dir, 'jail-state'), commands: { jail: p.jail!, jexec: p.jexec!, jls: p.jls!, mount: p.mount!, umount: p.umount! } })
      : new MacosSandbox({ uid: 1001, arch: 'arm64', commands: { sudo: p.sudo!, dscl: p.dscl! } });
  const builder = await Builder.open({ store, sandbox, fetcher: new TreeFetcher(), dbPath: join(dir, 'db.sqlite'), secretKey: 'test-key' });
  await pool.takeLog();
  const startCalls = (await shims.calls()).length;
  let seen = startCalls;
  /** The sandbox's commands since the last call, the random jail name as ID, the mount root as $MNT, temps as T-. */
  const sandboxCalls = async () => {
    const calls = (await shims.calls()).slice(seen);
    seen += calls.length;
    const lines = calls.map(line);
    const id = /name=(cairn-[0-9a-f]{16})/.exec(lines.join('\n'))?.[1];
    return lines.map((l) => (id ? l.replaceAll(id, 'ID') : l).replaceAll(pool.mountRoot, '$MNT').replace(/\b\d+(?:\.\d+)?-\d+-/g, 'T-'));
  };
  /** Builds `ops` on the base image; `onOutput` sees the step's output. */
  const build = (ops: string, options: { signal?: AbortSignal; onOutput?: () => void } = {}) =>
    builder.build(parseSpec(`((from base) (shell /bin/sh -c) ${ops})`), {
      log: (e) => void (e.tag === 'output' && options.onOutput?.()),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  const names = new Map<string, string>([[baseId('base'), 'BASE']]);
  /** The pool's commands since the last call, step IDs replaced by the names given to `name`. */
  const zfsLog = async () => (await pool.takeLog()).map((l) => [...names].reduce((text, [id, n]) => text.replaceAll(id, n), l));
  const name = (id: string, n: string) => void names.set(id, n);
  /** `sandboxCalls` with step IDs named too. */
  const sandboxLog = async () => (await sandboxCalls()).map((l) => [...names].reduce((text, [id, n]) => text.replaceAll(id, n), l));
  return { pool, store, builder, build, sandboxLog, zfsLog, name, shims };
}

async function datasets(pool: ShimmedPool, under: string): Promise<string[]> {
  return Object.keys((await pool.readState()).datasets)
    .filter((d) => d.startsWith(`${under}/`))
    .sort();
}

/** What the engine asks of the store for a step whose ID and parent's ID are named STEP and PARENT. */
const STEP_BUILT = (step: string, parent: string) => [
  `zfs list -H -o name ${R}/${step}`, // the engine: in the store?
  `zfs list -H -o name ${R}/${step}`, // the engine, once it runs the step alone: still not?
  `zfs list -H -o name ${R}/${step}`, // the store's own check before building
  `zfs list -H -o name ${R}/${parent}`,
  `zfs clone ${R}/${parent}@snap ${RT}/T-${step}`,
];
const PUBLISHED = (step: string) => [
  `zfs snapshot -r ${RT}/T-${step}@snap`,
  `zfs set canmount=noauto ${RT}/T-${step}`,
  `zfs rename ${RT}/T-${step} ${R}/${step}`,
];
const BASE_BUILT = [
  `zfs list -H -o name ${R}/BASE`,
  `zfs list -H -o name ${R}/BASE`,
  `zfs list -H -o name ${R}/BASE`,
  `zfs create ${RT}/T-BASE`,
  ...PUBLISHED('BASE'),
];

const CD = 'cd -- "$1" || exit 1; shift; exec "$@"';
/** The sandbox's commands for one step running `/bin/sh -c CMD` in the temp of STEP. */
function stepInSandbox(platform: Platform, step: string, cmd: string, caches: readonly { view: string; at: string }[] = []): string[] {
  const rootfs = `$MNT/result-tmp/T-${step}/rootfs`;
  if (platform === 'jail') {
    return [
      ...caches.map((c) => `mount -t nullfs ${c.view} ${rootfs}${c.at}`),
      `jail -c name=ID path=${rootfs} host.hostname=builder mount.devfs persist vnet exec.start=/sbin/ifconfig lo0 inet 127.0.0.1/8 up`,
      `jexec ID /usr/bin/env -i PATH=/bin /bin/sh -c ${CD} sh / /bin/sh -c ${cmd}`,
      'jail -r ID',
      ...caches.map((c) => `umount ${rootfs}${c.at}`).reverse(),
    ];
  }
  return [
    `sudo -n /bin/ln -sfh ${rootfs}/home /Users/mac1001`,
    `sudo -n /bin/ln -sfh ${rootfs}/brew /opt/homebrew`,
    `sudo -n -u mac1001 -i -- /usr/bin/env -i PATH=/bin HOME=/Users/mac1001 USER=mac1001 LOGNAME=mac1001 /bin/sh -c ${CD} sh / /bin/sh -c ${cmd}`,
    'sudo -n /usr/bin/pkill -9 -u mac1001',
    'sudo -n /bin/rm -f /opt/homebrew',
    'sudo -n /bin/rm -f /Users/mac1001',
  ];
}

for (const platform of ['jail', 'macos'] as const) {
  describe(`the engine on ${platform === 'jail' ? 'FreeBSD (ZFS store, jail sandbox)' : 'macOS (ZFS store, macOS sandbox)'}: recording shims, not run on real hardware`, () => {
    it('a step that succeeds is cloned, run, published; a rebuild replays it, mounting the results on demand', async () => {
      const s = await setup(platform, [{ cmd: STEP_CMD[platform], stdout: 'made\n' }]);
      const id = await s.build('(run (shell "make"))');
      s.name(id, 'STEP');
      expect(await s.zfsLog()).toEqual([...BASE_BUILT, ...STEP_BUILT('STEP', 'BASE'), ...PUBLISHED('STEP')]);
      expect(await s.sandboxLog()).toEqual(stepInSandbox(platform, 'STEP', 'make'));
      expect(await s.store.exists(id)).toBe(true);
      expect(await datasets(s.pool, RT)).toEqual([]);
      // Idle results unmounted: the cached rebuild mounts each when the engine reads its env or log.
      s.store.unmountIdle();
      await s.zfsLog();
      let output = 0;
      expect(await s.build('(run (shell "make"))', { onOutput: () => void output++ })).toBe(id);
      expect(output).toBeGreaterThan(0);
      expect(await s.zfsLog()).toEqual([`zfs list -H -o name ${R}/BASE`, `zfs mount ${R}/BASE`, `zfs list -H -o name ${R}/STEP`, `zfs mount ${R}/STEP`]);
      expect(await s.sandboxLog()).toEqual([]);
    });

    it('a step that fails leaves nothing: the sandbox cleans up, the clone is destroyed', async () => {
      const s = await setup(platform, [{ cmd: STEP_CMD[platform], stdout: 'error: no rule\n', exitCode: 2 }]);
      const error: unknown = await s.build('(run (shell "make"))').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BuildError);
      expect((error as Error).message).toMatch(/\(run \(shell make\)\) failed: .*exit.* 2/);
      const log = await s.zfsLog();
      const step = /T-([0-9a-f]{64})/.exec(log.find((l) => l.startsWith('zfs clone'))!)![1]!;
      s.name(step, 'STEP');
      expect(log.map((l) => l.replaceAll(step, 'STEP'))).toEqual([
        ...BASE_BUILT,
        ...STEP_BUILT('STEP', 'BASE'),
        `zfs destroy -r ${RT}/T-STEP`,
        `zfs list -H -o name ${R}/STEP`,
      ]);
      expect(await s.sandboxLog()).toEqual(stepInSandbox(platform, 'STEP', 'make'));
      expect(await s.store.exists(step)).toBe(false);
      expect(await datasets(s.pool, RT)).toEqual([]);
      expect(await datasets(s.pool, R)).toEqual([`${R}/${baseId('base')}`]);
    });

    it(`a cancelled step: the sandbox ${platform === 'jail' ? 'removes the jail (jail -r kills its processes)' : "kills the user's processes"}, the clone is destroyed`, async () => {
      const s = await setup(platform, [{ cmd: STEP_CMD[platform], stdout: 'started\n', sleepMs: 30_000 }]);
      const controller = new AbortController();
      const started = Date.now();
      const error: unknown = await s
        .build('(run (shell "sleep 30"))', { signal: controller.signal, onOutput: () => controller.abort() })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CancelledError);
      // Bounds for a hang, not for speed: every shim call is a Node process, slow on a loaded machine.
      expect(Date.now() - started).toBeLessThan(25_000);
      // The build rejects at once; the step's own clean-up (kill, destroy, a last look) follows.
      let log: string[] = [];
      await expect
        .poll(
          async () => {
            log = [...log, ...(await s.zfsLog())];
            const destroyed = log.findIndex((l) => l.startsWith(`zfs destroy -r ${RT}/`));
            return destroyed >= 0 && log.length > destroyed + 1;
          },
          { timeout: 60_000, interval: 100 },
        )
        .toBe(true);
      const step = /T-([0-9a-f]{64})/.exec(log.find((l) => l.startsWith('zfs clone'))!)![1]!;
      s.name(step, 'STEP');
      expect(log.map((l) => l.replaceAll(step, 'STEP'))).toEqual([
        ...BASE_BUILT,
        ...STEP_BUILT('STEP', 'BASE'),
        `zfs destroy -r ${RT}/T-STEP`,
        `zfs list -H -o name ${R}/STEP`,
      ]);
      // The kill is what the cancel does; the step's command was still running then.
      expect(await s.sandboxLog()).toEqual(stepInSandbox(platform, 'STEP', 'sleep 30'));
      expect(await datasets(s.pool, RT)).toEqual([]);
    });

    it('a cache is released: committed (clone promoted and renamed) after a success, destroyed after a failure', async () => {
      const s = await setup(platform, [
        { cmd: STEP_CMD[platform], match: 'fail', exitCode: 1 },
        { cmd: STEP_CMD[platform], stdout: 'ok\n' },
      ]);
      const target = CACHE_TARGET[platform];
      const id = await s.build(`(run (cache (opam (target ${target}))) (shell "make"))`);
      s.name(id, 'STEP');
      expect(await s.zfsLog()).toEqual([
        ...BASE_BUILT,
        ...STEP_BUILT('STEP', 'BASE'),
        // Looked for, then again under the cache's lock before creating it.
        `zfs get -Hp -o value guid ${C}/opam@snap`,
        `zfs get -Hp -o value guid ${C}/opam@snap`,
        `zfs create ${C}/opam`,
        `zfs snapshot ${C}/opam@snap`,
        `zfs get -Hp -o value guid ${C}/opam@snap`,
        `zfs clone ${C}/opam@snap ${CT}/T-opam`,
        `zfs get -Hp -o value guid ${C}/opam@snap`,
        `zfs promote ${CT}/T-opam`,
        `zfs destroy ${C}/opam`,
        `zfs rename ${CT}/T-opam ${C}/opam`,
        `zfs rename ${C}/opam@snap ${C}/opam@old-G`,
        `zfs snapshot ${C}/opam@snap`,
        `zfs destroy -d ${C}/opam@old-G`,
        ...PUBLISHED('STEP'),
      ]);
      // The macOS sandbox links the cache into the home directory itself: no command.
      expect(await s.sandboxLog()).toEqual(
        platform === 'jail'
          ? stepInSandbox(platform, 'STEP', 'make', [{ view: `$MNT/cache-tmp/T-opam`, at: target }])
          : stepInSandbox(platform, 'STEP', 'make'),
      );
      await expect(s.build(`(run (cache (opam (target ${target}))) (shell "fail"))`)).rejects.toThrow(BuildError);
      const log = await s.zfsLog();
      expect(log.filter((l) => l.includes('/cache'))).toEqual([
        `zfs get -Hp -o value guid ${C}/opam@snap`,
        `zfs clone ${C}/opam@snap ${CT}/T-opam`,
        `zfs destroy -r ${CT}/T-opam`,
      ]);
      expect(await datasets(s.pool, CT)).toEqual([]);
      expect(await datasets(s.pool, C)).toEqual([`${C}/opam`]);
    });

    it('prune removes the least recently used leaves through the Builder, leaf first, and keeps what the limit spares', async () => {
      const s = await setup(platform, [{ cmd: STEP_CMD[platform], stdout: 'ok\n' }]);
      const a = await s.build('(run (shell "make a"))');
      const b = await s.build('(run (shell "make b"))');
      s.name(a, 'A');
      s.name(b, 'B');
      await s.zfsLog();
      const removed = await s.builder.prune(Date.now() + 1000, 2);
      expect(removed).toEqual([a, b]);
      expect(await s.zfsLog()).toEqual([
        `zfs get -H -o value clones ${R}/A@snap`,
        `zfs destroy -r ${R}/A`,
        `zfs get -H -o value clones ${R}/B@snap`,
        `zfs destroy -r ${R}/B`,
      ]);
      expect(await datasets(s.pool, R)).toEqual([`${R}/${baseId('base')}`]);
      expect(await s.builder.prune(Date.now() + 1000, 10)).toEqual([baseId('base')]);
      expect(await s.zfsLog()).toEqual([`zfs get -H -o value clones ${R}/BASE@snap`, `zfs destroy -r ${R}/BASE`]);
      expect(await datasets(s.pool, R)).toEqual([]);
      expect((await s.pool.readState()).snapshots).toEqual({});
    });

    it('healthcheck runs the echo step and removes it; a step that never ends times out and is killed', async () => {
      const s = await setup(platform, [{ cmd: STEP_CMD[platform], stdout: 'healthcheck\n' }]);
      await s.builder.healthcheck('base', 60_000);
      const log = await s.zfsLog();
      const step = /T-([0-9a-f]{64})/.exec(log.find((l) => l.startsWith('zfs clone'))!)![1]!;
      s.name(step, 'STEP');
      expect(log.map((l) => l.replaceAll(step, 'STEP'))).toEqual([
        ...BASE_BUILT,
        ...STEP_BUILT('STEP', 'BASE'),
        ...PUBLISHED('STEP'),
        `zfs get -H -o value clones ${R}/STEP@snap`,
        `zfs destroy -r ${R}/STEP`,
      ]);
      expect(await s.sandboxLog()).toEqual(stepInSandbox(platform, 'STEP', 'echo healthcheck'));
      await s.shims.setRules([{ cmd: STEP_CMD[platform], ...(STEP_MATCH[platform] ? { match: STEP_MATCH[platform] } : {}), sleepMs: 60_000 }]);
      await expect(s.builder.healthcheck('base', 4000)).rejects.toThrow(new BuildError('healthcheck timed out after 4000 ms'));
      await expect
        .poll(async () => (await datasets(s.pool, RT)).length === 0 && (await s.sandboxLog()).length, { timeout: 20_000 })
        .toBe(stepInSandbox(platform, 'STEP', 'x').length);
    });

    it('delete removes a snapshot and what was built on it, children first', async () => {
      const s = await setup(platform, [{ cmd: STEP_CMD[platform], stdout: 'ok\n' }]);
      const a = await s.build('(run (shell "make a"))');
      s.name(a, 'A');
      await s.zfsLog();
      await s.builder.delete(baseId('base'));
      expect(await s.zfsLog()).toEqual([
        `zfs get -H -o value clones ${R}/A@snap`,
        `zfs destroy -r ${R}/A`,
        `zfs get -H -o value clones ${R}/BASE@snap`,
        `zfs destroy -r ${R}/BASE`,
      ]);
      expect(await datasets(s.pool, R)).toEqual([]);
      expect(s.builder.snapshotCount()).toBe(0);
    });
  });
}
