import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxImage } from '../../../test/support/images.js';
import { withBtrfs } from '../../../test/support/filesystems.js';

const REPO = join(import.meta.dirname, '../../..');
const CLI = join(REPO, 'apps/cli/bin/cairn.js');

/** `cairn build` as a separate process, the way users and CI run it. */
describe('cairn build (a real process on a real btrfs store)', () => {
  let dir: string;
  let fs: { path: string; cleanup(): Promise<void> };
  let env: NodeJS.ProcessEnv;
  let stateDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-build-cli-'));
    // Qgroups on, for --disk.
    fs = await withBtrfs({ quotas: true });
    await busyboxImage(join(dir, 'images'), 'cairn/busybox:latest');
    stateDir = join(dir, 'state');
    env = {
      ...process.env,
      CAIRN_STORE: `btrfs:${fs.path}`,
      CAIRN_FETCHER: `oci:${join(dir, 'images')}`,
      CAIRN_CONFIG: join(dir, 'cairn.json'),
      CAIRN_SECRET_KEY: 'k',
    };
    await writeFile(env.CAIRN_CONFIG!, JSON.stringify({ stateDir }));
  });
  afterAll(async () => {
    await fs?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const specFile = async (name: string, body: string) => {
    const path = join(dir, name);
    await writeFile(path, `((from cairn/busybox:latest) (shell /bin/sh -c) ${body})`);
    return path;
  };
  // Asynchronous on purpose: a test's own servers must keep answering while cairn runs.
  const cairn = (args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile('node', [CLI, ...args], { env, cwd: dir, maxBuffer: 64 << 20 }, (error, stdout, stderr) =>
        resolve({ status: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
      );
    });

  it('streams step output under [n/N] headings and prints the result; --json for scripts', async () => {
    const file = await specFile('hello.spec', '(run (shell "echo hello-from-step"))');
    const r = await cairn(['build', '-f', file, dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[1\/2\] \(from cairn\/busybox:latest\)\n/);
    expect(r.stdout).toMatch(/\[2\/2\] \/: \(run \(shell "echo hello-from-step"\)\)\nhello-from-step\n---> saved as "[0-9a-f]{64}" \(\d+\.\d\ds\)\n/);
    expect(r.stdout).toMatch(/Got: "[0-9a-f]{64}"\n$/);
    const json = await cairn(['build', '-f', file, dir, '--json']);
    const result = JSON.parse(json.stdout);
    expect(result.steps.map((s: { cached: boolean }) => s.cached)).toEqual([true, true]);
    expect(json.stderr).toContain('hello-from-step');
  });

  it('exits 1 naming the failed step', async () => {
    const r = await cairn(['build', '-f', await specFile('fail.spec', '(run (shell "exit 7"))'), dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('cairn: (run (shell "exit 7")) failed: the command exited with code 7\n');
  });

  it('survives kill -9 mid-step: the next build succeeds with no partial result or leaked container', async () => {
    const file = await specFile('slow.spec', '(run (shell "echo started-slow; sleep 3; echo finished-slow"))');
    const child = spawn('node', [CLI, 'build', '-f', file, dir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('started-slow')) resolve();
      });
      child.on('exit', () => reject(new Error(`build exited early:\n${out}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const again = await cairn(['build', '-f', file, dir]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain('started-slow\nfinished-slow\n');
    // The new process cleaned up after the dead one: no temp snapshots, no containers.
    expect(await readdir(join(fs.path, 'result-tmp')).catch(() => [])).toEqual([]);
    const states = await readdir(stateDir);
    for (const s of states) {
      const list = spawnSync('runc', ['--root', join(stateDir, s), 'list', '-q'], { encoding: 'utf8' });
      expect(list.stdout.trim()).toBe('');
    }
    // The killed build's step (its shell still holds the command line) is gone too; a
    // plain "sleep 3" pattern would also match unrelated processes on the machine.
    expect(spawnSync('pgrep', ['-f', 'echo started-slow; sleep 3'], { encoding: 'utf8' }).stdout.trim()).toBe('');
  });

  describe('network isolation', () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      server = createServer((_, res) => res.end('host-service\n'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('a step reaches the host loopback only with (network host) and --host-network shared', async () => {
      // busybox-static's wget crashes resolving even a numeric host; nc does not. nc's
      // complaint is left out: runc relays stderr apart from stdout, so it can land
      // between the lines the test reads as one.
      const probe = (address: string) => `printf 'GET / HTTP/1.0\\\\r\\\\n\\\\r\\\\n' | nc -w 3 ${address} ${port} 2>/dev/null || echo unreachable`;
      const isolated = await cairn(['build', '-f', await specFile('net1.spec', `(run (shell "${probe('127.0.0.1')}; echo isolated"))`), dir]);
      expect(isolated.stdout).toContain('unreachable');
      expect(isolated.stdout).not.toContain('host-service');
      // By default a (network host) step has a network of its own: not the host's loopback,
      // by its own 127.0.0.1 or by slirp's alias for the host (10.0.2.2).
      const host = await cairn([
        'build',
        '-f',
        await specFile('net2.spec', `(run (network host) (shell "${probe('127.0.0.1')}; ${probe('10.0.2.2')}; echo host"))`),
        dir,
      ]);
      expect(host.status, host.stderr).toBe(0);
      expect(host.stdout).toContain('unreachable\nunreachable\nhost');
      expect(host.stdout).not.toContain('host-service');
      const shared = await cairn([
        'build',
        '--host-network',
        'shared',
        '-f',
        await specFile('net3.spec', `(run (network host) (shell "${probe('127.0.0.1')}; echo shared"))`),
        dir,
      ]);
      expect(shared.stdout).toContain('host-service');
      const bad = await cairn(['build', '--host-network', 'open', '-f', await specFile('net4.spec', '(run (network host) (shell "true"))'), dir]);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toContain("'--host-network <mode>' argument 'open' is invalid");
    });
  });

  it('--step-timeout and the limits: a step past them fails naming them (exit 1); a malformed value is a usage error (exit 2)', async () => {
    const slow = await cairn(['build', '--step-timeout', '1s', '-f', await specFile('slow.spec', '(run (shell "echo slow-started; sleep 1000"))'), dir]);
    expect(slow.status).toBe(1);
    expect(slow.stdout).toContain('slow-started');
    expect(slow.stderr).toContain('(run (shell "echo slow-started; sleep 1000")) failed: step timeout 1 s reached');
    const bomb = await cairn(['build', '--pids', '128', '-f', await specFile('bomb.spec', '(run (shell "bomb() { bomb | bomb & }; bomb; sleep 1000"))'), dir]);
    expect(bomb.status).toBe(1);
    expect(bomb.stderr).toContain('failed: pids limit 128 reached');
    const writer = await cairn(['build', '--disk', '64m', '-f', await specFile('writer.spec', '(run (shell "dd if=/dev/zero of=/big bs=1M count=200"))'), dir]);
    expect(writer.status).toBe(1);
    expect(writer.stderr).toContain('failed: disk limit 64 MiB reached; nothing was published');
    const unconfined = await cairn([
      'build',
      '--seccomp',
      'unconfined',
      '-f',
      await specFile('seccomp.spec', '(run (shell "grep ^Seccomp: /proc/self/status; echo unconfined"))'),
      dir,
    ]);
    expect(unconfined.stdout).toContain('Seccomp:\t0\nunconfined');
    const fine = await cairn([
      'build',
      '--memory',
      '512m',
      '--pids',
      '128',
      '--cpus',
      '0.5',
      '--disk',
      '64m',
      '--step-timeout',
      '1m',
      '-f',
      await specFile('fine.spec', '(run (shell "echo within-limits"))'),
      dir,
    ]);
    expect(fine.status, fine.stderr).toBe(0);
    expect(fine.stdout).toContain('within-limits');
    for (const [flag, value, message] of [
      ['--memory', 'lots', '--memory: "lots" is not a size (e.g. 512m, 4g)'],
      ['--pids', '1.5', '--pids: "1.5" is not a positive whole number'],
      ['--disk', '0', '--disk: "0" is not a positive size'],
      ['--step-timeout', 'soon', '--step-timeout: "soon" is not a duration (e.g. 90s, 30m, 2h)'],
    ] as const) {
      const bad = await cairn(['build', flag, value, '-f', await specFile('fine.spec', '(run (shell "echo within-limits"))'), dir]);
      expect(bad.status, flag).toBe(2);
      expect(bad.stderr).toContain(message);
    }
  });

  it('df, prune and delete manage the store', async () => {
    const df = JSON.parse((await cairn(['df', '--json'])).stdout);
    expect(df.snapshots).toBeGreaterThan(0);
    expect(df.bytesFree).toBeGreaterThan(0);
    expect(df.bytesTotal).toBeGreaterThan(df.bytesFree);
    // btrfs allocates inodes dynamically and reports no inode totals; others do.
    expect(df.inodesFree).toBeLessThanOrEqual(df.inodesTotal);
    const built = JSON.parse((await cairn(['build', '-f', await specFile('del.spec', '(run (shell "echo to-delete"))'), dir, '--json'])).stdout);
    const del = await cairn(['delete', built.id]);
    expect(del.status, del.stderr).toBe(0);
    expect((await cairn(['delete', built.id])).stderr).toContain(`no snapshot ${built.id}`);
    const pruned = JSON.parse((await cairn(['prune', '--before', '0s', '--json'])).stdout);
    expect(pruned.removed.length).toBeGreaterThan(0);
    expect(JSON.parse((await cairn(['df', '--json'])).stdout).snapshots).toBe(df.snapshots - pruned.removed.length);
  });

  it('healthcheck proves the store, sandbox and fetcher work', async () => {
    const r = await cairn(['healthcheck', '--image', 'cairn/busybox:latest', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).ok).toBe(true);
  });
});
