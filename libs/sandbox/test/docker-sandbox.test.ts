import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type RunningDockerd } from '../../../test/support/dockerd.js';
import { makeBusyboxRootfs } from '../../../test/support/rootfs.js';
import { containerConfig, Demuxer, windowsPath } from '../src/docker-containers.js';
import { DockerSandbox } from '../src/docker-sandbox.js';
import { CancelledError, LimitReachedError, StepFailedError, type RunConfig } from '../src/sandbox.js';
import { stepConfig } from './harness.js';

const BASE = 'cairn-test/busybox:latest';

describe('the docker sandbox, on a private dockerd', () => {
  let d: RunningDockerd;
  let work: string;
  let sandbox: DockerSandbox;
  let steps = 0;

  /** A build directory as the docker store makes it: docker.json next to rootfs. */
  const step = async (base = BASE) => {
    steps += 1;
    const dir = join(work, `step-${steps}`);
    await mkdir(join(dir, 'rootfs'), { recursive: true });
    const target = `cairn-test-out:${steps}`;
    await writeFile(join(dir, 'docker.json'), JSON.stringify({ base, target }));
    return { rootfs: join(dir, 'rootfs'), target };
  };
  const run = async (rootfs: string, c: RunConfig, stdin?: Uint8Array, signal?: AbortSignal) => {
    const out: Uint8Array[] = [];
    await sandbox.run(c, rootfs, { onOutput: (chunk) => out.push(chunk), stdin, signal });
    return Buffer.concat(out).toString();
  };
  const containers = async () => (await d.docker(['ps', '-a', '--format', '{{.Names}}'])).trim();

  beforeAll(async () => {
    d = await startDockerd();
    work = await mkdtemp(join(tmpdir(), 'cairn-docker-sandbox-'));
    const rootfs = join(work, 'busybox');
    await mkdir(rootfs);
    await chmod(rootfs, 0o755);
    await makeBusyboxRootfs(rootfs);
    await d.importRootfs(rootfs, BASE, ['ENV PATH=/bin', 'CMD ["/bin/sh"]']);
    sandbox = new DockerSandbox({ socketPath: d.socketPath });
    await sandbox.init();
  });
  afterAll(async () => {
    await d?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('streams stdout and stderr, commits to the target keeping the Cmd, and continues from it in the same step', async () => {
    const s = await step();
    const out = await run(s.rootfs, stepConfig('echo out; echo err >&2; echo data > /f; hostname; pwd', { cwd: '/tmp' }));
    // stdout and stderr are separate pipes in Docker: each is in order, not their interleaving.
    expect(out.replace('err\n', '')).toBe('out\nbuilder\n/tmp\n');
    expect(out).toContain('err\n');
    expect(await d.docker(['image', 'inspect', '--format', '{{json .Config.Cmd}} {{json .Config.Entrypoint}}', s.target])).toMatch(
      /^\["\/bin\/sh"\] (null|\[\])\n$/,
    );
    expect(await run(s.rootfs, stepConfig('cat /f; id -u; id -g', { user: { kind: 'unix', uid: 1000, gid: 1000 } }))).toBe('data\n1000\n1000\n');
    expect(await containers()).toBe('');
  });

  it('commits nothing for a step that changed no file, and records in docker.json what it committed', async () => {
    const s = await step();
    expect(await run(s.rootfs, stepConfig('cat /etc/passwd >/dev/null; echo read'))).toBe('read\n');
    await expect(d.docker(['image', 'inspect', s.target])).rejects.toThrow();
    await run(s.rootfs, stepConfig('rm /etc/passwd'));
    const file = JSON.parse(await readFile(join(dirname(s.rootfs), 'docker.json'), 'utf8')) as { committed: { id: string } };
    expect(file.committed.id).toBe((await d.docker(['image', 'inspect', '--format', '{{.Id}}', s.target])).trim());
    expect(await run(s.rootfs, stepConfig('test -e /etc/passwd || echo deleted'))).toBe('deleted\n');
    expect(await containers()).toBe('');
  });

  it('stops a fork bomb at its pids limit and names the limit, as the runc sandbox does', async () => {
    const limited = new DockerSandbox({ socketPath: d.socketPath, limits: { pids: 128 } });
    const s = await step();
    const started = Date.now();
    const error = await limited
      .run(stepConfig('bomb() { bomb | bomb & }; bomb; exec sleep 60'), s.rootfs, { onOutput: () => undefined })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LimitReachedError);
    expect((error as Error).message).toBe('pids limit 128 reached');
    // A hang bound: the step sleeps for 60 s unless stopped.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await containers()).toBe('');
  });

  it("kills a step past its memory limit, says so, and runs under Docker's default seccomp profile", async () => {
    const limited = new DockerSandbox({ socketPath: d.socketPath, limits: { memoryBytes: 128 * 1024 * 1024, pids: 256 } });
    const s = await step();
    const out: Uint8Array[] = [];
    const hog = stepConfig('grep ^Seccomp: /proc/self/status; x=$(head -c 300000000 /dev/zero | tr "\\0" a); echo ${#x}');
    const error = await limited.run(hog, s.rootfs, { onOutput: (c) => out.push(c) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LimitReachedError);
    expect((error as Error).message).toBe('killed: out of memory (limit 128 MiB)');
    expect(Buffer.concat(out).toString()).toBe('Seccomp:\t2\n');
    expect(await containers()).toBe('');
  });

  it('rejects with the exit code, commits nothing and removes the container', async () => {
    const s = await step();
    const error = await run(s.rootfs, stepConfig('echo failing; exit 3')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StepFailedError);
    expect((error as StepFailedError).exitCode).toBe(3);
    await expect(d.docker(['image', 'inspect', s.target])).rejects.toThrow();
    expect(await containers()).toBe('');
  });

  it('feeds stdin (a tar stream, as copy steps do) and the command sees EOF', async () => {
    const src = join(work, 'tar-src');
    await mkdir(join(src, 'x'), { recursive: true });
    await writeFile(join(src, 'x', 'file'), 'copied\n');
    const { stdout } = await promisify(execFile)('tar', ['-C', src, '-cf', '-', 'x'], { encoding: 'buffer' });
    const s = await step();
    await run(s.rootfs, { ...stepConfig(''), argv: ['tar', '-xf', '-'] }, stdout);
    expect(await run(s.rootfs, stepConfig('cat /x/file'))).toBe('copied\n');
    expect(await run(s.rootfs, stepConfig('wc -c'), Buffer.alloc(0))).toBe('0\n');
  });

  describe('network', () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      server = createServer((socket) => socket.end('hello-from-host\n'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("has none by default; (network host) reaches out but not the host's loopback, unless shared", async () => {
      const probe = (address: string) => `nc -w 3 ${address} </dev/null && echo reached || echo unreachable`;
      expect(await run((await step()).rootfs, stepConfig(probe(`127.0.0.1 ${port}`)))).toContain('unreachable');
      expect(await run((await step()).rootfs, stepConfig('ip link | grep -c "^[0-9]"'))).toBe('1\n');
      // Isolated (the default): Cairn's bridge. The host's loopback-only server is out of
      // reach; one listening on the host's other addresses (here its bridge gateway) is not.
      const outside = createServer((socket) => socket.end('hello-from-outside\n'));
      await new Promise<void>((resolve) => outside.listen(0, '0.0.0.0', resolve));
      try {
        const outsidePort = (outside.address() as AddressInfo).port;
        const gateway = `$(ip route | awk '/^default/ {print $3}')`;
        const isolated = await run(
          (await step()).rootfs,
          stepConfig(`${probe(`127.0.0.1 ${port}`)}; ${probe(`${gateway} ${port}`)}; ${probe(`${gateway} ${outsidePort}`)}`, { network: ['host'] }),
        );
        expect(isolated).not.toContain('hello-from-host');
        expect(isolated.match(/^unreachable$/gm)).toHaveLength(2);
        expect(isolated).toContain('hello-from-outside\nreached\n');
      } finally {
        outside.close();
      }
      expect(await d.docker(['network', 'ls', '--format', '{{.Name}}'])).toContain('cairn-steps');
      const shared = new DockerSandbox({ socketPath: d.socketPath, hostNetwork: 'shared' });
      const out: Uint8Array[] = [];
      await shared.run(stepConfig(probe(`127.0.0.1 ${port}`), { network: ['host'] }), (await step()).rootfs, { onOutput: (c) => out.push(c) });
      expect(Buffer.concat(out).toString()).toContain('hello-from-host\nreached');
    });
  });

  it('mounts secrets read-only, and keeps them out of the committed image', async () => {
    const s = await step();
    const secret = { target: '/run/secrets/token', value: Buffer.from('super-secret-value') };
    const out = await run(s.rootfs, stepConfig('cat /run/secrets/token; echo; echo x > /run/secrets/token || echo read-only', { secrets: [secret] }));
    expect(out).toContain('super-secret-value');
    expect(out).toContain('read-only');
    await d.docker(['create', '--name', 'exported', s.target, '/x']);
    const { stdout } = await promisify(execFile)('sh', ['-c', `docker -H unix://${d.socketPath} export exported | grep -a -c super-secret-value || true`]);
    await d.docker(['rm', 'exported']);
    expect(stdout.trim()).toBe('0');
  });

  it('bind-mounts cache directories writable', async () => {
    const cache = join(work, 'cache');
    await mkdir(cache);
    await run((await step()).rootfs, stepConfig('echo cached > /cache/f', { mounts: [{ src: cache, dst: '/cache' }] }));
    expect(await run((await step()).rootfs, stepConfig('cat /cache/f', { mounts: [{ src: cache, dst: '/cache' }] }))).toBe('cached\n');
  });

  it('on abort, removes the container and rejects with CancelledError', async () => {
    const s = await step();
    const controller = new AbortController();
    const out: string[] = [];
    const running = sandbox.run(stepConfig('echo started; sleep 1000'), s.rootfs, {
      onOutput: (chunk) => {
        out.push(Buffer.from(chunk).toString());
        if (out.join('').includes('started')) controller.abort();
      },
      signal: controller.signal,
    });
    const t0 = Date.now();
    await expect(running).rejects.toBeInstanceOf(CancelledError);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await containers()).toBe('');
    await expect(d.docker(['image', 'inspect', s.target])).rejects.toThrow();
  });

  it("init removes a dead process's containers and keeps a live one's and others'", async () => {
    await d.docker(['create', '--name', 'cairn-run-999999-dead', '--label', 'cairn.sandbox=1', BASE, '/bin/true']);
    await d.docker(['create', '--name', `cairn-run-${process.pid}-live`, '--label', 'cairn.sandbox=1', BASE, '/bin/true']);
    await d.docker(['create', '--name', 'someone-else', BASE, '/bin/true']);
    await sandbox.init();
    expect((await containers()).split('\n').sort()).toEqual([`cairn-run-${process.pid}-live`, 'someone-else']);
    await d.docker(['rm', `cairn-run-${process.pid}-live`, 'someone-else']);
  });
});

describe('docker container config (pure)', () => {
  const plan = { name: 'cairn-run-1-a', image: 'sha256:abc', secretFiles: ['/tmp/s/0'], stdin: true };
  const c = stepConfig('make', {
    cwd: '/app',
    env: [['A', 'b c']],
    network: [],
    mounts: [{ src: '/var/lib/docker/volumes/v/_data', dst: '/root/.opam' }],
    secrets: [{ target: '/run/secrets/t', value: Buffer.from('v') }],
  });

  it('builds a Linux container: uid:gid, no network, hostname, read-only secret binds, stdin once', () => {
    expect(containerConfig(c, plan, { os: 'linux' })).toEqual({
      name: 'cairn-run-1-a',
      Image: 'sha256:abc',
      Entrypoint: [],
      Cmd: ['/bin/sh', '-c', 'make'],
      WorkingDir: '/app',
      Env: ['A=b c'],
      User: '0:0',
      Hostname: 'builder',
      NetworkDisabled: true,
      Labels: { 'cairn.sandbox': '1' },
      Tty: false,
      AttachStdin: true,
      OpenStdin: true,
      StdinOnce: true,
      AttachStdout: true,
      AttachStderr: true,
      HostConfig: {
        NetworkMode: 'none',
        AutoRemove: false,
        Mounts: [
          { Type: 'bind', Source: '/var/lib/docker/volumes/v/_data', Target: '/root/.opam', ReadOnly: false },
          { Type: 'bind', Source: '/tmp/s/0', Target: '/run/secrets/t', ReadOnly: true },
        ],
      },
    });
  });

  it('passes limits to the daemon (no swap beyond memory) and turns its seccomp profile off only when unconfined', () => {
    const limited = containerConfig(c, { ...plan, limits: { memoryBytes: 256 * 1024 * 1024, pids: 512, cpus: 0.5 } }, { os: 'linux' }).HostConfig;
    expect(limited).toMatchObject({ Memory: 268435456, MemorySwap: 268435456, PidsLimit: 512, NanoCpus: 500000000 });
    expect(limited?.SecurityOpt).toBeUndefined();
    expect(containerConfig(c, { ...plan, seccomp: 'unconfined' }, { os: 'linux' }).HostConfig?.SecurityOpt).toEqual(['seccomp=unconfined']);
    expect(containerConfig(c, plan, { os: 'linux' }).HostConfig).not.toHaveProperty('Memory');
  });

  it('uses the host network without a hostname, or the step network with one, and passes a named network through', () => {
    const host = containerConfig(stepConfig('x', { network: ['host'] }), plan, { os: 'linux' });
    expect(host.HostConfig?.NetworkMode).toBe('host');
    expect(host.Hostname).toBeUndefined();
    const isolated = containerConfig(stepConfig('x', { network: ['host'] }), { ...plan, hostNetworkName: 'cairn-steps' }, { os: 'linux' });
    expect(isolated.HostConfig?.NetworkMode).toBe('cairn-steps');
    expect(isolated.Hostname).toBe('builder');
    expect(containerConfig(stepConfig('x'), { ...plan, hostNetworkName: 'cairn-steps' }, { os: 'linux' }).HostConfig?.NetworkMode).toBe('none');
    // No network sandbox at all for `none` on Linux; the other modes and Windows keep the daemon's.
    expect([host.NetworkDisabled, isolated.NetworkDisabled]).toEqual([undefined, undefined]);
    expect(containerConfig(stepConfig('x', { user: { kind: 'windows', name: 'u' } }), plan, { os: 'windows' }).NetworkDisabled).toBeUndefined();
    expect(containerConfig(stepConfig('x', { network: ['nat'], user: { kind: 'windows', name: 'u' } }), plan, { os: 'windows' }).HostConfig?.NetworkMode).toBe(
      'nat',
    );
    expect(() => containerConfig(stepConfig('x', { network: ['a', 'b'] }), plan, { os: 'linux' })).toThrow('one network');
  });

  it('builds a Windows container: drive paths, cmd /S /C, the user by name, isolation', () => {
    const win = containerConfig({ ...c, argv: ['cmd', '/S', '/C', 'echo hi'], user: { kind: 'windows', name: 'ContainerAdministrator' } }, plan, {
      os: 'windows',
      isolation: 'hyperv',
    });
    expect(win.Cmd).toEqual(['cmd', '/S', '/C', 'echo hi']);
    expect(win.WorkingDir).toBe('C:\\app');
    expect(win.User).toBe('ContainerAdministrator');
    expect(win.HostConfig?.Isolation).toBe('hyperv');
    expect(win.HostConfig?.Mounts?.map((m) => m.Target)).toEqual(['C:\\root\\.opam', 'C:\\run\\secrets\\t']);
    expect(containerConfig({ ...c, user: { kind: 'windows', name: 'u' } }, plan, { os: 'windows', isolation: 'process' }).HostConfig?.Isolation).toBe(
      'process',
    );
    expect(containerConfig({ ...c, user: { kind: 'windows', name: 'u' } }, plan, { os: 'windows' }).HostConfig?.Isolation).toBeUndefined();
    expect(() => containerConfig(c, plan, { os: 'windows' })).toThrow('named user');
    expect([windowsPath('/'), windowsPath('C:/'), windowsPath('d:/src/x'), windowsPath('C:\\w')]).toEqual(['C:\\', 'C:\\', 'D:\\src\\x', 'C:\\w']);
  });

  it('demultiplexes the attach stream across chunk boundaries', () => {
    const frame = (type: number, text: string) => {
      const h = Buffer.alloc(8);
      h[0] = type;
      h.writeUInt32BE(Buffer.byteLength(text), 4);
      return Buffer.concat([h, Buffer.from(text)]);
    };
    const all = Buffer.concat([frame(1, 'out'), frame(2, 'err'), frame(1, '')]);
    const got: string[] = [];
    const demux = new Demuxer((chunk) => got.push(Buffer.from(chunk).toString()));
    for (let i = 0; i < all.length; i += 5) demux.push(all.subarray(i, i + 5));
    expect(got).toEqual(['out', 'err']);
  });
});
