import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { line, makeShims, type ShimRule } from '../../../libs/sandbox/test/jail-shims.js';
import { ShimmedPool } from '../../../libs/store/test/zfs-pool.js';
import { busyboxImage } from '../../../test/support/images.js';
import { main } from '../src/main.js';

// `cairn healthcheck --store zfs:POOL/DATASET --sandbox macos`, through the real CLI code
// (main -> store-admin.ts -> openConfiguredBuilder -> Builder.healthcheck), on the
// recording shims: ZFS and macOS cannot run here. The CLI finds `zfs` and `zpool` on
// PATH, so their shims go first on PATH; the macOS sandbox takes its commands from the
// machine config. `--sandbox jail` cannot take shims through the CLI yet: the jail
// driver runs /usr/sbin/jail... by absolute path, and openConfiguredBuilder passes no
// jail options from the machine config (reported); the engine's healthcheck on the jail
// shims is in libs/builder/test/platform-shims.test.ts.
//
// `--store zfs:P/D` always mounts at /P/D, so the shim's pool is `tmp`, mounted at /tmp,
// and each test's store a fresh dataset under it.

const IMAGE = 'cairn/busybox:latest';

let images: string;
let saved: { path: string | undefined };
beforeAll(async () => {
  images = await mkdtemp(join(tmpdir(), 'cairn-hc-images-'));
  await busyboxImage(images, IMAGE);
  saved = { path: process.env.PATH };
});
afterAll(async () => {
  await rm(images, { recursive: true, force: true });
});

async function cairn(args: string[]): Promise<{ code: number | undefined; out: string; err: string; error?: unknown }> {
  let out = '';
  let err = '';
  try {
    const code = await main(args, { out: (s) => void (out += s), err: (s) => void (err += s), readStdin: async () => '' });
    return { code, out, err };
  } catch (error) {
    // Not a user error: main has printed it and rethrows; bin/cairn.js then exits non-zero.
    return { code: undefined, out, err, error };
  }
}

type Platform = 'macos';

async function setup(platform: Platform, rules: readonly ShimRule[]) {
  // dscl: the slot user exists already, with its uid.
  rules = [...rules, { cmd: 'dscl', stdout: 'UniqueID: 1001\n' }];
  const pool = await ShimmedPool.create({ name: 'tmp', mountpoint: '/tmp' });
  const dataset = `tmp/cairn-zfs-shim-${randomBytes(6).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), 'cairn-hc-'));
  const shims = await makeShims(['sudo', 'dscl']);
  await shims.setRules(rules);
  const config = join(dir, 'cairn.json');
  await writeFile(
    config,
    JSON.stringify({
      stateDir: join(dir, 'state'),
      macos: { uid: 1001, arch: 'arm64', commands: { sudo: shims.paths.sudo, dscl: shims.paths.dscl } },
    }),
  );
  const env = { PATH: process.env.PATH, CAIRN_CONFIG: process.env.CAIRN_CONFIG, CAIRN_SECRET_KEY: process.env.CAIRN_SECRET_KEY };
  process.env.PATH = `${join(pool.dir, 'bin')}:${join(shims.dir, 'bin')}:${saved.path}`;
  process.env.CAIRN_CONFIG = config;
  process.env.CAIRN_SECRET_KEY = 'test-key';
  onTestFinished(async () => {
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await rm(`/${dataset}`, { recursive: true, force: true });
    await rm(pool.dir, { recursive: true, force: true, maxRetries: 5 });
    await rm(dir, { recursive: true, force: true });
  });
  const run = (timeout: string) =>
    cairn(['healthcheck', '--store', `zfs:${dataset}`, '--sandbox', platform, '--fetcher', `oci:${images}`, '--image', IMAGE, '--timeout', timeout]);
  /** The pool's commands, the dataset as DS and its temps as T-<label>, step IDs as BASE and STEP. */
  const ids: string[] = [];
  const zfsLog = async () => {
    const lines = (await pool.takeLog()).map((l) => l.replaceAll(dataset, 'DS').replaceAll(/\b\d+(?:\.\d+)?-\d+-/g, 'T-'));
    // The first ID ever seen is the base image's, the next the echo step's.
    for (const id of lines.flatMap((l) => l.match(/[0-9a-f]{64}/g) ?? [])) if (!ids.includes(id)) ids.push(id);
    return lines.map((l) => ids.reduce((text, id, i) => text.replaceAll(id, i === 0 ? 'BASE' : 'STEP'), l));
  };
  const sandboxLog = async () => {
    const lines = (await shims.calls()).map(line);
    const id = /name=(cairn-[0-9a-f]{16})/.exec(lines.join('\n'))?.[1];
    return lines.map((l) => (id ? l.replaceAll(id, 'ID') : l).replaceAll(`/${dataset}`, '$MNT').replaceAll(/\b\d+(?:\.\d+)?-\d+-[0-9a-f]{64}/g, 'T-STEP'));
  };
  return { run, zfsLog, sandboxLog, setRules: (r: readonly ShimRule[]) => shims.setRules([...r, { cmd: 'dscl', stdout: 'UniqueID: 1001\n' }]) };
}

const INIT = [
  'zpool list -H -o health tmp',
  'zfs get -H -o value mountpoint DS',
  'zfs create -p -o mountpoint=/DS DS',
  'zfs create DS/result',
  'zfs create DS/result-tmp',
  'zfs create DS/cache',
  'zfs create DS/cache-tmp',
  'zfs list -H -o name -t filesystem -d 1 DS/result-tmp DS/cache-tmp',
  'zfs mount',
];
const BUILT = (step: string, from: string | undefined) => [
  `zfs list -H -o name DS/result/${step}`,
  `zfs list -H -o name DS/result/${step}`,
  `zfs list -H -o name DS/result/${step}`,
  ...(from === undefined
    ? [`zfs create DS/result-tmp/T-${step}`]
    : [`zfs list -H -o name DS/result/${from}`, `zfs clone DS/result/${from}@snap DS/result-tmp/T-${step}`]),
];
const PUBLISHED = (step: string) => [
  `zfs snapshot -r DS/result-tmp/T-${step}@snap`,
  `zfs set canmount=noauto DS/result-tmp/T-${step}`,
  `zfs rename DS/result-tmp/T-${step} DS/result/${step}`,
];
const ECHO = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const STEP: Record<Platform, ShimRule['cmd']> = { macos: 'sudo' };
/** On macOS `sudo` also makes links: the step is the `sudo -i` call. */
const stepRule = (platform: Platform, rule: Omit<ShimRule, 'cmd'>): ShimRule => ({ cmd: STEP[platform], match: '-i', ...rule });

/** The macOS sandbox's init (the user exists: look it up, kill its stragglers), then the step. */
function sandboxSequence(_platform: Platform, envPath: string): string[] {
  return ['dscl . -read /Users/mac1001 UniqueID', 'sudo -n /usr/bin/pkill -9 -u mac1001', ...stepOnly('$MNT/result-tmp/T-STEP/rootfs', envPath)];
}

function stepOnly(rootfs: string, envPath: string): string[] {
  return [
    `sudo -n /bin/ln -sfh ${rootfs}/home /Users/mac1001`,
    `sudo -n /bin/ln -sfh ${rootfs}/brew /opt/homebrew`,
    `sudo -n -u mac1001 -i -- /usr/bin/env -i ${envPath} HOME=/Users/mac1001 USER=mac1001 LOGNAME=mac1001 /bin/sh -c cd -- "$1" || exit 1; shift; exec "$@" sh / /bin/sh -c echo healthcheck`,
    'sudo -n /usr/bin/pkill -9 -u mac1001',
    'sudo -n /bin/rm -f /opt/homebrew',
    'sudo -n /bin/rm -f /Users/mac1001',
  ];
}

for (const platform of ['macos'] as const) {
  describe(`cairn healthcheck --store zfs:POOL/DATASET --sandbox ${platform} (recording shims, not run on real hardware)`, () => {
    it('builds the echo step, prints healthy, and deletes the step, by the exact command sequence', async () => {
      const s = await setup(platform, [stepRule(platform, { stdout: 'healthcheck\n' })]);
      const r = await s.run('60');
      expect(r.error).toBeUndefined();
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^healthy \(\d+ ms\)\n$/);
      expect(await s.zfsLog()).toEqual([
        ...INIT,
        ...BUILT('BASE', undefined),
        ...PUBLISHED('BASE'),
        ...BUILT('STEP', 'BASE'),
        ...PUBLISHED('STEP'),
        'zfs get -H -o value clones DS/result/STEP@snap',
        'zfs destroy -r DS/result/STEP',
      ]);
      expect(await s.sandboxLog()).toEqual(sandboxSequence(platform, ECHO));
    });

    it('a failing echo: a clear error naming the step, no exit 0, nothing left behind', async () => {
      const s = await setup(platform, [stepRule(platform, { stderr: 'sh: echo: not found\n', exitCode: 127 })]);
      const r = await s.run('60');
      // A failed step is reported, not thrown: exit 1 with the message, no stack trace.
      expect(r.code).toBe(1);
      expect(r.err).toBe('cairn: (run (shell "echo healthcheck")) failed: the command exited with code 127\n');
      const log = await s.zfsLog();
      expect(log.slice(-2)).toEqual(['zfs destroy -r DS/result-tmp/T-STEP', 'zfs list -H -o name DS/result/STEP']);
      expect(await s.sandboxLog()).toEqual(sandboxSequence(platform, ECHO));
    });

    it('an echo that never ends: "timed out" after --timeout, the step killed, no exit 0', async () => {
      // A first healthcheck leaves the base image: the timed one then only waits for its step.
      const s = await setup(platform, [stepRule(platform, { stdout: 'healthcheck\n' })]);
      expect((await s.run('60')).code).toBe(0);
      await s.zfsLog();
      await s.setRules([stepRule(platform, { sleepMs: 60_000 })]);
      const started = Date.now();
      const r = await s.run('8');
      expect(r.code).toBe(1);
      expect(r.err).toBe('cairn: healthcheck timed out after 8000 ms\n');
      expect(Date.now() - started).toBeLessThan(30_000);
      // Both runs in full (the sandbox log is not cleared): the kill (pkill of the user's
      // processes) is in the second, then the clean-up, and the clone is destroyed.
      const expected = [...sandboxSequence(platform, ECHO), ...sandboxSequence(platform, ECHO)];
      await expect.poll(async () => (await s.sandboxLog()).length, { timeout: 20_000 }).toBe(expected.length);
      expect(await s.sandboxLog()).toEqual(expected);
      let log: string[] = [];
      await expect
        .poll(async () => (log = [...log, ...(await s.zfsLog())]).slice(-2), { timeout: 20_000 })
        .toEqual(['zfs destroy -r DS/result-tmp/T-STEP', 'zfs list -H -o name DS/result/STEP']);
    });
  });
}
