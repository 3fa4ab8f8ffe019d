import { readdirSync, readFileSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { JailSandbox } from '../src/jail-sandbox.js';
import { UnsupportedConfigError } from '../src/oci-config.js';
import { CancelledError, LimitReachedError, StepFailedError, type RunConfig, type RunOptions } from '../src/sandbox.js';
import type { StepLimits } from '../src/step-limits.js';
import { line, makeShims, type ShimRule } from './jail-shims.js';

const CD = 'cd -- "$1" || exit 1; shift; exec "$@"';
const LOOPBACK = 'exec.start=/sbin/ifconfig lo0 inet 127.0.0.1/8 up';

function config(over: Partial<RunConfig> = {}): RunConfig {
  return {
    argv: ['/bin/sh', '-c', 'make'],
    cwd: '/',
    env: [
      ['PATH', '/bin:/usr/bin'],
      ['HOME', '/root'],
    ],
    user: { kind: 'unix', uid: 0, gid: 0 },
    hostname: 'builder',
    network: [],
    mounts: [],
    secrets: [],
    ...over,
  };
}

async function setup(rules: readonly ShimRule[] = [], limits?: StepLimits) {
  const shims = await makeShims(['jail', 'jexec', 'jls', 'mount', 'umount', 'rctl']);
  await shims.setRules(rules);
  const dir = await mkdtemp(join(tmpdir(), 'cairn-jail-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const rootfs = join(dir, 'rootfs');
  const stateDir = join(dir, 'state');
  await mkdir(join(rootfs, 'srv'), { recursive: true });
  const { jail, jexec, jls, mount, umount, rctl } = shims.paths as Record<'jail' | 'jexec' | 'jls' | 'mount' | 'umount' | 'rctl', string>;
  const sandbox = new JailSandbox({ stateDir, commands: { jail, jexec, jls, mount, umount, rctl }, ...(limits ? { limits } : {}) });
  const attempt = async (c: RunConfig, options: Partial<RunOptions> = {}) => {
    const chunks: Buffer[] = [];
    try {
      await sandbox.run(c, rootfs, { onOutput: (b) => chunks.push(Buffer.from(b)), ...options });
      return { output: Buffer.concat(chunks).toString() };
    } catch (error) {
      return { output: Buffer.concat(chunks).toString(), error };
    }
  };
  /** The calls as lines, with the shim dir and the random jail name made readable. */
  const calls = async () => {
    const lines = (await shims.calls()).map(line);
    const id = /name=(cairn-[0-9a-f]{16})/.exec(lines.join('\n'))?.[1];
    return lines.map((l) => (id ? l.replaceAll(id, 'ID') : l).replaceAll(dir, 'DIR'));
  };
  return { shims, dir, rootfs, stateDir, sandbox, attempt, calls };
}

const exists = (path: string) =>
  lstat(path).then(
    () => true,
    () => false,
  );

describe('JailSandbox (recording shim; FreeBSD is not available on this machine)', () => {
  it('creates a vnet jail, runs the step with its env and cwd, streams its output, then removes the jail', async () => {
    const s = await setup([{ cmd: 'jexec', stdout: 'built\n' }]);
    const { output, error } = await s.attempt(config({ cwd: '/src' }));
    expect(error).toBeUndefined();
    expect(output).toBe('built\n');
    expect(await s.calls()).toEqual([
      `jail -c name=ID path=DIR/rootfs host.hostname=builder mount.devfs persist vnet ${LOOPBACK}`,
      `jexec ID /usr/bin/env -i PATH=/bin:/usr/bin HOME=/root /bin/sh -c ${CD} sh /src /bin/sh -c make`,
      'jail -r ID',
    ]);
    // Nothing left in the state dir: the step's record is gone.
    expect(await readdir(s.stateDir)).toEqual([]);
  });

  it("limits a step's jail with rctl rules (the job's, capped by the sandbox's) and removes them with the jail", async () => {
    const s = await setup([], { memoryBytes: 4 * 1024 ** 3, pids: 4096 });
    const { error } = await s.attempt(config(), { limits: { memoryBytes: 256 * 1024 ** 2, cpus: 1.5 } });
    expect(error).toBeUndefined();
    // Reads of the jail's use while the step runs (rctl -u) come as often as the poll: not counted here.
    expect((await s.calls()).filter((l) => !l.startsWith('rctl -u'))).toEqual([
      `jail -c name=ID path=DIR/rootfs host.hostname=builder mount.devfs persist vnet ${LOOPBACK}`,
      'rctl -a jail:ID:memoryuse:deny=268435456',
      'rctl -a jail:ID:maxproc:deny=4096',
      'rctl -a jail:ID:pcpu:deny=150',
      `jexec ID /usr/bin/env -i PATH=/bin:/usr/bin HOME=/root /bin/sh -c ${CD} sh / /bin/sh -c make`,
      'rctl -r jail:ID',
      'jail -r ID',
    ]);
  });

  it('fails a limited step whose rules rctl refuses, naming the boot setting, and leaves nothing behind', async () => {
    const s = await setup([{ cmd: 'rctl', exitCode: 1, stderr: 'rctl: failed to add rule: Operation not permitted' }], { pids: 512 });
    const { error } = await s.attempt(config());
    expect((error as Error).message).toBe('rctl failed (exit 1): rctl: failed to add rule: Operation not permitted (is kern.racct.enable=1 set at boot?)');
    expect((await s.calls()).filter((c) => c.startsWith('jexec'))).toEqual([]);
    expect((await s.calls()).slice(-2)).toEqual(['rctl -r jail:ID', 'jail -r ID']);
    expect(await readdir(s.stateDir)).toEqual([]);
  });

  it('fails a step whose jail reached its pids limit with the pids reason, and a step below it with its exit code', async () => {
    // A fork bomb that gave up: its shell exited 2 on a refused fork, its children still fill the jail.
    const bomb = await setup(
      [
        { cmd: 'jexec', exitCode: 2 },
        { cmd: 'rctl', match: '-u', stdout: 'cputime=1\nmaxproc=512\nmemoryuse=1048576\n' },
      ],
      { pids: 512 },
    );
    const { error } = await bomb.attempt(config());
    expect(error).toBeInstanceOf(LimitReachedError);
    expect((error as Error).message).toBe('pids limit 512 reached');
    expect((error as LimitReachedError).exitCode).toBe(2);
    expect((await bomb.calls()).filter((l) => l.startsWith('rctl -u')).at(-1)).toBe('rctl -u jail:ID');
    expect((await bomb.calls()).slice(-2)).toEqual(['rctl -r jail:ID', 'jail -r ID']);

    const plain = await setup(
      [
        { cmd: 'jexec', exitCode: 2 },
        { cmd: 'rctl', match: '-u', stdout: 'maxproc=3\n' },
      ],
      { pids: 512 },
    );
    const failed = (await plain.attempt(config())).error;
    expect(failed).toBeInstanceOf(StepFailedError);
    expect(failed).not.toBeInstanceOf(LimitReachedError);
    expect((failed as Error).message).toBe('the command exited with code 2');
  });

  it('stops a step whose jail sits at its pids limit (jail -r kills it) and fails it with the pids reason', async () => {
    const s = await setup(
      [
        { cmd: 'jexec', sleepMs: 60_000 },
        { cmd: 'rctl', match: '-u', stdout: 'maxproc=64\n' },
      ],
      { pids: 64 },
    );
    const started = Date.now();
    const { error } = await s.attempt(config());
    expect(error).toBeInstanceOf(LimitReachedError);
    expect((error as Error).message).toBe('pids limit 64 reached');
    // A bound for a hang, not a timing: the shim would sleep a minute.
    expect(Date.now() - started).toBeLessThan(30_000);
    // Stopped as on a cancel: the jail goes first (once), then its rules.
    expect((await s.calls()).filter((l) => !l.startsWith('rctl -u')).slice(-2)).toEqual(['jail -r ID', 'rctl -r jail:ID']);
    expect((await s.calls()).filter((l) => l === 'jail -r ID')).toHaveLength(1);
    expect(await readdir(s.stateDir)).toEqual([]);
  });

  it('shares the host network for (network host) and rejects named networks before doing anything', async () => {
    const s = await setup();
    expect((await s.attempt(config({ network: ['host'] }))).error).toBeUndefined();
    expect((await s.calls())[0]).toBe('jail -c name=ID path=DIR/rootfs host.hostname=builder mount.devfs persist ip4=inherit ip6=inherit');
    const before = (await s.calls()).length;
    const { error } = await s.attempt(config({ network: ['bridge'] }));
    expect(error).toBeInstanceOf(UnsupportedConfigError);
    expect((error as Error).message).toContain('bridge');
    expect(await s.calls()).toHaveLength(before);
  });

  it("runs a non-root user through the jail's chroot with numeric IDs, since jexec takes names only", async () => {
    const s = await setup();
    await s.attempt(config({ user: { kind: 'unix', uid: 1000, gid: 1001 } }));
    expect((await s.calls())[1]).toBe(
      `jexec ID /usr/sbin/chroot -u 1000 -g 1001 -G 1001 / /usr/bin/env -i PATH=/bin:/usr/bin HOME=/root /bin/sh -c ${CD} sh / /bin/sh -c make`,
    );
  });

  it('rejects a Windows user clearly, without a command', async () => {
    const s = await setup();
    const { error } = await s.attempt(config({ user: { kind: 'windows', name: 'ContainerAdministrator' } }));
    expect(error).toBeInstanceOf(UnsupportedConfigError);
    expect((error as Error).message).toMatch(/Unix users only.*ContainerAdministrator.*docker/);
    expect(await s.calls()).toEqual([]);
  });

  it('rejects a failing step with its exit code, after its output, and still removes the jail', async () => {
    const s = await setup([{ cmd: 'jexec', stdout: 'before\n', exitCode: 3 }]);
    const { output, error } = await s.attempt(config());
    expect(output).toBe('before\n');
    expect(error).toBeInstanceOf(StepFailedError);
    expect((error as StepFailedError).exitCode).toBe(3);
    expect((await s.calls()).slice(1).map((l) => l.split(' ')[0])).toEqual(['jexec', 'jail']);
    expect((await s.calls())[2]).toBe('jail -r ID');
  });

  it('streams output in order as it is produced, stdout and stderr in one log', async () => {
    const s = await setup([
      {
        cmd: 'jexec',
        delayMs: 150,
        chunks: [{ text: 'one\n' }, { text: 'two\n', stream: 'stderr' }, { text: 'three\n' }],
      },
    ]);
    const arrivals: { text: string; at: number }[] = [];
    await s.sandbox.run(config(), s.rootfs, { onOutput: (c) => arrivals.push({ text: Buffer.from(c).toString(), at: Date.now() }) });
    const done = Date.now();
    expect(arrivals.map((a) => a.text).join('')).toBe('one\ntwo\nthree\n');
    expect(done - arrivals[0]!.at).toBeGreaterThan(200);
  });

  it('feeds stdin to the step', async () => {
    const s = await setup([{ cmd: 'jexec', echoStdin: true }]);
    const { output } = await s.attempt(config(), { stdin: Buffer.from('input bytes') });
    expect(output).toBe('input bytes');
    expect((await s.shims.calls())[1]!.stdin).toBe('input bytes');
  });

  it("cancels with jail -r (which kills the jail's processes), then cleans up, and rejects with CancelledError", async () => {
    const s = await setup([{ cmd: 'jexec', stdout: 'started\n', sleepMs: 30_000 }]);
    await mkdir(join(s.dir, 'cache'));
    const controller = new AbortController();
    const started = Date.now();
    const { output, error } = await s.attempt(config({ mounts: [{ src: join(s.dir, 'cache'), dst: '/data' }] }), {
      signal: controller.signal,
      onOutput: () => controller.abort(),
    });
    expect(error).toBeInstanceOf(CancelledError);
    expect(output).toBe('');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await s.calls()).toEqual([
      'mount -t nullfs DIR/cache DIR/rootfs/data',
      `jail -c name=ID path=DIR/rootfs host.hostname=builder mount.devfs persist vnet ${LOOPBACK}`,
      `jexec ID /usr/bin/env -i PATH=/bin:/usr/bin HOME=/root /bin/sh -c ${CD} sh / /bin/sh -c make`,
      'jail -r ID',
      'umount DIR/rootfs/data',
    ]);
    expect(await exists(join(s.rootfs, 'data'))).toBe(false);
  });

  it('does nothing for a signal that is already aborted', async () => {
    const s = await setup();
    const { error } = await s.attempt(config(), { signal: AbortSignal.abort() });
    expect(error).toBeInstanceOf(CancelledError);
    expect(await s.calls()).toEqual([]);
  });

  it('mounts caches then secrets with nullfs, unmounts them in reverse order, and removes what it created', async () => {
    const s = await setup();
    await mkdir(join(s.dir, 'cache-a'));
    await mkdir(join(s.dir, 'cache-b'));
    // A link in the image: the mount must land inside the rootfs, never at the host's /srv.
    await symlink('/srv', join(s.rootfs, 'link'));
    let secretDuringStep: string | undefined;
    await s.shims.setRules([{ cmd: 'jexec', stdout: 'x' }]);
    const { error } = await s.attempt(
      config({
        mounts: [
          { src: join(s.dir, 'cache-a'), dst: '/data/a' },
          { src: join(s.dir, 'cache-b'), dst: '/link/b', readonly: true },
        ],
        secrets: [{ target: '/run/secrets/token', value: Buffer.from('s3cret') }],
      }),
      {
        // onOutput is synchronous: read the secret while the step runs.
        onOutput: () => {
          const dir = join(
            s.stateDir,
            readdirSync(s.stateDir).find((e) => e.endsWith('.secrets'))!,
          );
          secretDuringStep = readFileSync(join(dir, 'secret-0'), 'utf8');
        },
      },
    );
    expect(error).toBeUndefined();
    expect(secretDuringStep).toBe('s3cret');
    expect(await s.calls()).toEqual([
      'mount -t nullfs DIR/cache-a DIR/rootfs/data/a',
      'mount -t nullfs -o ro DIR/cache-b DIR/rootfs/srv/b',
      'mount -t nullfs -o ro DIR/state/ID.secrets/secret-0 DIR/rootfs/run/secrets/token',
      `jail -c name=ID path=DIR/rootfs host.hostname=builder mount.devfs persist vnet ${LOOPBACK}`,
      `jexec ID /usr/bin/env -i PATH=/bin:/usr/bin HOME=/root /bin/sh -c ${CD} sh / /bin/sh -c make`,
      'jail -r ID',
      'umount DIR/rootfs/run/secrets/token',
      'umount DIR/rootfs/srv/b',
      'umount DIR/rootfs/data/a',
    ]);
    // The mountpoints the driver created are gone; what the image had stays.
    expect(await readdir(s.rootfs)).toEqual(['link', 'srv']);
    expect(await readdir(join(s.rootfs, 'srv'))).toEqual([]);
    expect(await readdir(s.stateDir)).toEqual([]);
  });

  it('retries a busy unmount with -f, and keeps its record for init() when that fails too', async () => {
    const s = await setup([{ cmd: 'umount', exitCode: 1, stderr: 'Device busy' }]);
    await mkdir(join(s.dir, 'cache'));
    const { error } = await s.attempt(config({ mounts: [{ src: join(s.dir, 'cache'), dst: '/data' }] }));
    expect((error as Error).message).toMatch(/could not clean up.*umount .*data: Device busy/);
    expect((await s.calls()).slice(-2)).toEqual(['umount DIR/rootfs/data', 'umount -f DIR/rootfs/data']);
    expect((await readdir(s.stateDir)).filter((e) => e.endsWith('.json'))).toHaveLength(1);
    expect(await exists(join(s.rootfs, 'data'))).toBe(true);
  });

  it('unmounts and reports when the jail cannot be created', async () => {
    const s = await setup([{ cmd: 'jail', match: '-c', exitCode: 1, stderr: 'jail: vnet: not supported' }]);
    await mkdir(join(s.dir, 'cache'));
    const { error } = await s.attempt(config({ mounts: [{ src: join(s.dir, 'cache'), dst: '/data' }] }));
    expect((error as Error).message).toContain('vnet: not supported');
    expect((await s.calls()).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['mount -t', 'jail -c', 'umount DIR/rootfs/data']);
    expect(await readdir(s.stateDir)).toEqual([]);
  });

  it('init() removes leftover cairn-* jails, then the mounts, mountpoints and secrets a crash left behind', async () => {
    const s = await setup([{ cmd: 'jls', stdout: 'cairn-00000000000000aa\nwebserver\ncairn-00000000000000bb\n' }]);
    await mkdir(s.stateDir, { recursive: true });
    await mkdir(join(s.rootfs, 'data'));
    const secretsDir = join(s.stateDir, 'cairn-00000000000000aa.secrets');
    await mkdir(secretsDir);
    await writeFile(join(secretsDir, 'secret-0'), 'left behind');
    await writeFile(
      join(s.stateDir, 'cairn-00000000000000aa.json'),
      JSON.stringify({
        jail: 'cairn-00000000000000aa',
        mounts: [join(s.rootfs, 'data'), join(s.rootfs, 'srv')],
        created: [join(s.rootfs, 'data')],
        secretsDir,
      }),
    );
    await s.sandbox.init();
    expect(await s.calls()).toEqual([
      'jls -N name',
      'jail -r cairn-00000000000000aa',
      'jail -r cairn-00000000000000bb',
      'umount DIR/rootfs/srv',
      'umount DIR/rootfs/data',
    ]);
    expect(await readdir(s.stateDir)).toEqual([]);
    expect(await readdir(s.rootfs)).toEqual(['srv']);
  });
});
