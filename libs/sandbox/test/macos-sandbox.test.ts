import { lstatSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readlink, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MacosSandbox, type MacosSandboxOptions } from '../src/macos-sandbox.js';
import { UnsupportedConfigError } from '../src/oci-config.js';
import { CancelledError, LimitReachedError, StepFailedError, type RunConfig, type RunOptions } from '../src/sandbox.js';
import { line, makeShims, type ShimRule } from './jail-shims.js';

const CD = 'cd -- "$1" || exit 1; shift; exec "$@"';

function config(over: Partial<RunConfig> = {}): RunConfig {
  return {
    argv: ['/bin/bash', '-c', 'brew install opam'],
    cwd: '/Users/mac1001/src',
    env: [['PATH', '/opt/homebrew/bin:/usr/bin:/bin']],
    user: { kind: 'unix', uid: 1000, gid: 1000 },
    hostname: 'builder',
    network: [],
    mounts: [],
    secrets: [],
    ...over,
  };
}

async function setup(rules: readonly ShimRule[] = [], options: Partial<MacosSandboxOptions> = {}) {
  const shims = await makeShims(['sudo', 'dscl', 'pgrep']);
  await shims.setRules(rules);
  const dir = await mkdtemp(join(tmpdir(), 'cairn-macos-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'home'), { recursive: true });
  await mkdir(join(rootfs, 'brew'), { recursive: true });
  const usersDir = join(dir, 'Users');
  await mkdir(usersDir);
  const sandbox = new MacosSandbox({
    uid: 1001,
    usersDir,
    arch: 'arm64',
    brewPrefix: join(dir, 'opt/homebrew'),
    commands: { sudo: shims.paths.sudo!, dscl: shims.paths.dscl!, pgrep: shims.paths.pgrep! },
    ...options,
  });
  const attempt = async (c: RunConfig, runOptions: Partial<RunOptions> = {}) => {
    const chunks: Buffer[] = [];
    try {
      await sandbox.run(c, rootfs, { onOutput: (b) => chunks.push(Buffer.from(b)), ...runOptions });
      return { output: Buffer.concat(chunks).toString() };
    } catch (error) {
      return { output: Buffer.concat(chunks).toString(), error };
    }
  };
  const calls = async () => (await shims.calls()).map((c) => line(c).replaceAll(dir, 'DIR').replaceAll(shims.dir, 'SHIMS'));
  return { shims, dir, rootfs, usersDir, sandbox, attempt, calls };
}

const STEP = `sudo -n -u mac1001 -i -- /usr/bin/env -i PATH=/opt/homebrew/bin:/usr/bin:/bin HOME=DIR/Users/mac1001 USER=mac1001 LOGNAME=mac1001 /bin/sh -c ${CD} sh /Users/mac1001/src /bin/bash -c brew install opam`;
const LINKS = ['sudo -n /bin/ln -sfh DIR/rootfs/home DIR/Users/mac1001', 'sudo -n /bin/ln -sfh DIR/rootfs/brew DIR/opt/homebrew'];
const UNLINKS = ['sudo -n /bin/rm -f DIR/opt/homebrew', 'sudo -n /bin/rm -f DIR/Users/mac1001'];
const PKILL = 'sudo -n /usr/bin/pkill -9 -u mac1001';

describe('MacosSandbox (recording shim; macOS is not available on this machine)', () => {
  it('links home and prefix to the snapshot, runs the step as the slot user with a clean env, then kills stragglers and unlinks', async () => {
    const s = await setup([{ cmd: 'sudo', match: '-i', stdout: '==> Pouring opam\n' }]);
    const { output, error } = await s.attempt(config());
    expect(error).toBeUndefined();
    expect(output).toBe('==> Pouring opam\n');
    expect(await s.calls()).toEqual([...LINKS, STEP, PKILL, ...UNLINKS]);
  });

  it('picks the Homebrew prefix by architecture and wraps the step in sandbox-exec when a profile is set', async () => {
    expect(new MacosSandbox({ uid: 1001, arch: 'x64' }).prefix).toBe('/usr/local');
    expect(new MacosSandbox({ uid: 1001, arch: 'arm64' }).prefix).toBe('/opt/homebrew');
    expect(new MacosSandbox({ uid: 1001 }).home).toBe('/Users/mac1001');
    const t = await setup([], { sandboxProfile: '/etc/cairn/step.sb' });
    await t.attempt(config());
    expect((await t.calls())[2]).toContain(' LOGNAME=mac1001 /usr/bin/sandbox-exec -f /etc/cairn/step.sb /bin/sh -c ');
  });

  it('accepts (network host) and no network alike (not isolated on macOS) and rejects named networks', async () => {
    const s = await setup();
    expect((await s.attempt(config({ network: ['host'] }))).error).toBeUndefined();
    const withHost = await s.calls();
    expect((await s.attempt(config())).error).toBeUndefined();
    expect((await s.calls()).slice(withHost.length)).toEqual(withHost);
    const { error } = await s.attempt(config({ network: ['bridge'] }));
    expect(error).toBeInstanceOf(UnsupportedConfigError);
    expect((error as Error).message).toContain('bridge');
    expect(await s.calls()).toHaveLength(withHost.length * 2);
  });

  it('rejects Windows users and secrets clearly, without a command', async () => {
    const s = await setup();
    const windows = await s.attempt(config({ user: { kind: 'windows', name: 'ContainerAdministrator' } }));
    expect(windows.error).toBeInstanceOf(UnsupportedConfigError);
    expect((windows.error as Error).message).toMatch(/Unix users only.*ContainerAdministrator/);
    const secrets = await s.attempt(config({ secrets: [{ target: '/run/secrets/t', value: Buffer.from('x') }] }));
    expect(secrets.error).toBeInstanceOf(UnsupportedConfigError);
    expect((secrets.error as Error).message).toContain('/run/secrets/t');
    expect(await s.calls()).toEqual([]);
  });

  it('rejects a failing step with its exit code and still cleans up', async () => {
    const s = await setup([{ cmd: 'sudo', match: '-i', stdout: 'Error: no bottle\n', exitCode: 1 }]);
    const { output, error } = await s.attempt(config());
    expect(output).toBe('Error: no bottle\n');
    expect(error).toBeInstanceOf(StepFailedError);
    expect((error as StepFailedError).exitCode).toBe(1);
    expect(await s.calls()).toEqual([...LINKS, STEP, PKILL, ...UNLINKS]);
  });

  it('streams output in order as it is produced', async () => {
    const s = await setup([{ cmd: 'sudo', match: '-i', delayMs: 150, chunks: [{ text: 'a\n' }, { text: 'b\n', stream: 'stderr' }, { text: 'c\n' }] }]);
    const arrivals: { text: string; at: number }[] = [];
    await s.sandbox.run(config(), s.rootfs, { onOutput: (c) => arrivals.push({ text: Buffer.from(c).toString(), at: Date.now() }) });
    expect(arrivals.map((a) => a.text).join('')).toBe('a\nb\nc\n');
    expect(Date.now() - arrivals[0]!.at).toBeGreaterThan(200);
  });

  it('cancels by killing every process of the user, once, then cleans up, and rejects with CancelledError', async () => {
    const s = await setup([{ cmd: 'sudo', match: '-i', stdout: 'started\n', sleepMs: 30_000 }]);
    const controller = new AbortController();
    const started = Date.now();
    const { error } = await s.attempt(config(), { signal: controller.signal, onOutput: () => controller.abort() });
    expect(error).toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await s.calls()).toEqual([...LINKS, STEP, PKILL, ...UNLINKS]);
  });

  it("holds a step to its pids limit with ulimit -u (RLIMIT_NPROC, launchd's NumberOfProcesses), the job's capped by the sandbox's", async () => {
    const s = await setup(
      [
        { cmd: 'sudo', match: '-i', stdout: 'built\n' },
        { cmd: 'pgrep', stdout: '501\n502\n' },
      ],
      { limits: { pids: 4096 } },
    );
    const { error } = await s.attempt(config(), { limits: { pids: 256 } });
    expect(error).toBeUndefined();
    const limited = STEP.replace(`/bin/sh -c ${CD} sh `, `/bin/sh -c ulimit -u "$1" || exit 1; shift; ${CD} sh 256 `);
    // The user's processes are counted (pgrep) as often as the poll while the step runs: not counted here.
    expect((await s.calls()).filter((l) => !l.startsWith('pgrep'))).toEqual([...LINKS, limited, PKILL, ...UNLINKS]);
  });

  it('fails a step whose user reached its pids limit with the pids reason, stopping one that sits there, and a step below it with its exit code', async () => {
    const full = Array.from({ length: 64 }, (_, i) => String(600 + i)).join('\n') + '\n';
    const gaveUp = await setup(
      [
        { cmd: 'sudo', match: '-i', exitCode: 2 },
        { cmd: 'pgrep', stdout: full },
      ],
      { limits: { pids: 64 } },
    );
    const failed = (await gaveUp.attempt(config())).error;
    expect(failed).toBeInstanceOf(LimitReachedError);
    expect((failed as Error).message).toBe('pids limit 64 reached');
    expect((await gaveUp.calls()).filter((l) => l.startsWith('pgrep')).at(-1)).toBe('pgrep -u mac1001');

    const sitting = await setup(
      [
        { cmd: 'sudo', match: '-i', sleepMs: 60_000 },
        { cmd: 'pgrep', stdout: full },
      ],
      { limits: { pids: 64 } },
    );
    const started = Date.now();
    const stopped = (await sitting.attempt(config())).error;
    expect(stopped).toBeInstanceOf(LimitReachedError);
    expect((stopped as Error).message).toBe('pids limit 64 reached');
    // A bound for a hang, not a timing: the shim would sleep a minute.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect((await sitting.calls()).filter((l) => !l.startsWith('pgrep')).slice(-3)).toEqual([PKILL, ...UNLINKS]);

    const below = await setup(
      [
        { cmd: 'sudo', match: '-i', exitCode: 2 },
        { cmd: 'pgrep', stdout: '601\n' },
      ],
      { limits: { pids: 64 } },
    );
    const plain = (await below.attempt(config())).error;
    expect(plain).toBeInstanceOf(StepFailedError);
    expect(plain).not.toBeInstanceOf(LimitReachedError);
  });

  it('refuses memory and CPU limits, which macOS does not enforce, in its options and from a job, before doing anything', async () => {
    expect(() => new MacosSandbox({ uid: 1001, limits: { memoryBytes: 2 ** 30 } })).toThrow(/cannot hold steps to a memory limit .*set only pids/);
    const s = await setup();
    const { error } = await s.attempt(config(), { limits: { cpus: 1, pids: 100 } });
    expect(error).toBeInstanceOf(UnsupportedConfigError);
    expect((error as Error).message).toMatch(/cannot hold a step to a CPU limit/);
    expect(await s.calls()).toEqual([]);
  });

  it('links caches inside home and prefix for the step only, putting back an empty directory, in reverse order', async () => {
    const s = await setup([{ cmd: 'sudo', match: '-i', stdout: 'x' }]);
    await mkdir(join(s.dir, 'opam-cache'));
    await mkdir(join(s.dir, 'brew-cache'));
    await mkdir(join(s.rootfs, 'brew', 'Caches'), { recursive: true, mode: 0o750 });
    const during: Record<string, string> = {};
    const { error } = await s.attempt(
      config({
        mounts: [
          { src: join(s.dir, 'opam-cache'), dst: join(s.usersDir, 'mac1001/.opam/download-cache') },
          { src: join(s.dir, 'brew-cache'), dst: join(s.dir, 'opt/homebrew/Caches') },
        ],
      }),
      {
        onOutput: () => {
          for (const p of ['home/.opam/download-cache', 'brew/Caches']) {
            if (lstatSync(join(s.rootfs, p)).isSymbolicLink()) during[p] = readlinkSync(join(s.rootfs, p)).replace(s.dir, 'DIR');
          }
        },
      },
    );
    expect(error).toBeUndefined();
    expect(during).toEqual({ 'home/.opam/download-cache': 'DIR/opam-cache', 'brew/Caches': 'DIR/brew-cache' });
    // The parents the driver made are gone, the directory it moved aside is back.
    expect(await readdir(join(s.rootfs, 'home'))).toEqual([]);
    expect(lstatSync(join(s.rootfs, 'brew', 'Caches')).isDirectory()).toBe(true);
    expect(lstatSync(join(s.rootfs, 'brew', 'Caches')).mode & 0o777).toBe(0o750);
    expect(await s.calls()).toEqual([...LINKS, STEP, PKILL, ...UNLINKS]);
    const outside = await s.attempt(config({ mounts: [{ src: join(s.dir, 'opam-cache'), dst: '/var/cache' }] }));
    expect(outside.error).toBeInstanceOf(UnsupportedConfigError);
    expect((outside.error as Error).message).toContain('only put caches inside');
  });

  it('init() creates the slot user when missing, kills its processes and removes leftover links', async () => {
    const s = await setup([{ cmd: 'dscl', match: '-read', exitCode: 56, stderr: 'eDSRecordNotFound' }]);
    await symlink('/gone/home', join(s.usersDir, 'mac1001'));
    await s.sandbox.init();
    const record = '/Users/mac1001';
    expect(await s.calls()).toEqual([
      `dscl . -read ${record} UniqueID`,
      `sudo -n SHIMS/bin/dscl . -create ${record}`,
      `sudo -n SHIMS/bin/dscl . -create ${record} UserShell /bin/bash`,
      `sudo -n SHIMS/bin/dscl . -create ${record} RealName mac1001`,
      `sudo -n SHIMS/bin/dscl . -create ${record} UniqueID 1001`,
      `sudo -n SHIMS/bin/dscl . -create ${record} PrimaryGroupID 20`,
      `sudo -n SHIMS/bin/dscl . -create ${record} NFSHomeDirectory DIR/Users/mac1001`,
      PKILL,
      'sudo -n /bin/rm -f DIR/Users/mac1001',
    ]);
    expect(await readlink(join(s.usersDir, 'mac1001'))).toBe('/gone/home');
  });

  it('init() keeps an existing user with the right uid and refuses one with another', async () => {
    const s = await setup([{ cmd: 'dscl', match: '-read', stdout: 'UniqueID: 1001\n' }]);
    await s.sandbox.init();
    expect(await s.calls()).toEqual(['dscl . -read /Users/mac1001 UniqueID', PKILL]);
    const t = await setup([{ cmd: 'dscl', match: '-read', stdout: 'UniqueID: 501\n' }]);
    await expect(t.sandbox.init()).rejects.toThrow(/mac1001 has uid 501, not 1001/);
  });
});
