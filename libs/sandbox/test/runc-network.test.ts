import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { CancelledError, stepResolvConf, UserNetworkError } from '../src/index.js';
import { RUNTIMES, scratch, stepConfig, waitFor } from './harness.js';

// `(network host)` steps with user-mode networking (the default, hostNetwork "isolated"):
// what the host reaches they reach, the host's loopback they do not. The host's side: a
// TCP server on 127.0.0.1 that counts connections, as a worker's NATS server would be;
// elsewhere on the network: a web server in a network namespace of its own behind a veth
// pair, as another machine would be.

const FIXTURE = new URL('./fixtures/long-step.mjs', import.meta.url).pathname;

let loopback: Server;
let loopbackPort: number;
let connections = 0;

// Per test process, so that concurrent runs do not collide: 10.199.A.B/30.
const NETNS = `cairn-test-${process.pid}`;
const VETH = `cth${process.pid}`;
const SUBNET = `10.199.${(process.pid >> 6) & 255}.${(process.pid & 63) * 4}`;
const HOST_SIDE = SUBNET.replace(/\d+$/, (n) => String(Number(n) + 1));
const SERVER = SUBNET.replace(/\d+$/, (n) => String(Number(n) + 2));
let webRoot: string;
let web: ResultPromise | undefined;
let nats: RunningNats;

beforeAll(async () => {
  loopback = createServer((socket) => {
    connections++;
    socket.end('hello from the host loopback\n');
  });
  await new Promise<void>((resolve) => loopback.listen(0, '127.0.0.1', resolve));
  loopbackPort = (loopback.address() as AddressInfo).port;

  nats = await startNats();
  webRoot = await mkdtemp(join(tmpdir(), 'cairn-netns-web-'));
  await writeFile(join(webRoot, 'index.html'), 'hello from the test namespace\n');
  await execa('ip', ['netns', 'add', NETNS]);
  await execa('ip', ['link', 'add', VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NETNS]);
  await execa('ip', ['addr', 'add', `${HOST_SIDE}/30`, 'dev', VETH]);
  await execa('ip', ['link', 'set', VETH, 'up']);
  await execa('ip', ['-n', NETNS, 'addr', 'add', `${SERVER}/30`, 'dev', 'eth0']);
  await execa('ip', ['-n', NETNS, 'link', 'set', 'eth0', 'up']);
  await execa('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);
  web = execa('ip', ['netns', 'exec', NETNS, 'busybox', 'httpd', '-f', '-p', `${SERVER}:8080`, '-h', webRoot], { reject: false });
  // The host itself reaches it (or the test would prove nothing about the step).
  await waitFor(
    async () => (await execa('busybox', ['wget', '-q', '-O', '-', `http://${SERVER}:8080/`], { reject: false })).stdout.includes('hello'),
    "the test namespace's web server",
    10_000,
  );
});

afterAll(async () => {
  web?.kill('SIGKILL');
  await web;
  // Deleting the namespace takes its end of the veth pair, and with it the host's.
  await execa('ip', ['netns', 'delete', NETNS], { reject: false });
  await execa('ip', ['link', 'delete', VETH], { reject: false });
  await rm(webRoot, { recursive: true, force: true });
  await new Promise<void>((resolve) => loopback.close(() => resolve()));
  await nats?.stop();
});

/** The host's own non-loopback IPv4 addresses (where a server on 0.0.0.0 would also answer). */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.address));
}

/** The processes whose parent is `pid`: their pid, command name and command line. */
async function children(pid: number): Promise<{ pid: number; comm: string; args: string }[]> {
  const found = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split at the last ')'.
    const close = stat.lastIndexOf(')');
    const [state, ppid] = stat.slice(close + 2).split(' ');
    if (Number(ppid) !== pid || state === 'Z') continue;
    const args = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ').trim();
    found.push({ pid: Number(entry), comm: stat.slice(stat.indexOf('(') + 1, close), args });
  }
  return found;
}

/** The user-mode network's processes among `pid`'s children: slirp4netns and the namespace holder. */
async function networkProcesses(pid: number): Promise<number[]> {
  return (await children(pid)).filter((c) => c.comm === 'slirp4netns' || c.args.endsWith('echo; read _')).map((c) => c.pid);
}

function gone(pid: number): boolean {
  const stat = (() => {
    try {
      return readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return '';
    }
  })();
  return stat === '' || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

describe.each(RUNTIMES)('%s: (network host) with user-mode networking', (runtime) => {
  const probe = (address: string, port: number) => `nc -w 3 ${address} ${port} </dev/null && echo "${address}: reached" || echo "${address}: unreachable"`;

  it("cannot connect to a server on the host's 127.0.0.1, by any address", async () => {
    const s = await scratch(runtime);
    const addresses = ['127.0.0.1', '10.0.2.2', ...hostAddresses()];
    const before = connections;
    const output = await s.run(addresses.map((a) => probe(a, loopbackPort)).join('; '), { network: ['host'] });
    expect(output.split('\n').filter((l) => /: (un)?reachable$/.test(l))).toEqual(addresses.map((a) => `${a}: unreachable`));
    expect(connections).toBe(before);
  });

  it('cannot reach the worker\'s NATS server on 127.0.0.1, which hostNetwork "shared" can', async () => {
    // NATS greets every connection with INFO; the step waits a second for it.
    const greeting = (address: string) => `(sleep 1; echo PING) | nc -w 3 ${address} ${nats.port} | head -c 5; echo; echo done`;
    const isolated = await scratch(runtime);
    expect(await isolated.run(`${greeting('127.0.0.1')}; ${greeting('10.0.2.2')}`, { network: ['host'] })).not.toContain('INFO');
    const shared = await scratch(runtime, { hostNetwork: 'shared' });
    expect(await shared.run(greeting('127.0.0.1'), { network: ['host'] })).toBe('INFO \ndone\n');
  });

  it('with hostNetwork "shared" (the old behaviour), does connect to it', async () => {
    const s = await scratch(runtime, { hostNetwork: 'shared' });
    const before = connections;
    expect(await s.run(probe('127.0.0.1', loopbackPort), { network: ['host'] })).toContain('hello from the host loopback\n127.0.0.1: reached');
    expect(connections).toBe(before + 1);
  });

  it('reaches a server in another network namespace, as the host does', async () => {
    const s = await scratch(runtime);
    expect(await s.run(`wget -q -O - http://${SERVER}:8080/`, { network: ['host'] })).toBe('hello from the test namespace\n');
  });

  it("has its own tap0 behind slirp4netns, no CAP_NET_RAW, and the host's resolv.conf less loopback nameservers", async () => {
    const s = await scratch(runtime);
    const script =
      'ip -o -4 addr show tap0 | tr -s " " | cut -d" " -f4; ip route | grep ^default; grep CapBnd /proc/self/status; arping -c 1 -I tap0 10.0.2.2 2>&1; cat /etc/resolv.conf';
    const output = await s.run(script, { network: ['host'] });
    // Docker's default set less NET_RAW (bit 13).
    expect(output).toMatch(/^10\.0\.2\.100\/24\ndefault via 10\.0\.2\.2 dev tap0 *\nCapBnd:\t00000000a80405fb\narping: socket: Operation not permitted\n/);
    const host = existsSync('/etc/resolv.conf') ? readFileSync('/etc/resolv.conf', 'utf8') : '';
    expect(output.slice(output.indexOf('not permitted\n') + 'not permitted\n'.length)).toBe(
      stepResolvConf(host, existsSync('/run/systemd/resolve/resolv.conf') ? readFileSync('/run/systemd/resolve/resolv.conf', 'utf8') : undefined),
    );
  });

  it('steps without network are untouched: loopback only, no slirp4netns started', async () => {
    const s = await scratch(runtime);
    let output = '';
    const step = s.sandbox.run(stepConfig('ip -o link | cut -d: -f2; echo started; sleep 1'), s.rootfs, {
      onOutput: (c) => (output += Buffer.from(c).toString()),
    });
    await waitFor(() => output.includes('started'), 'the step to start');
    const during = await networkProcesses(process.pid);
    await step;
    expect(output).toBe(' lo\nstarted\n');
    expect(during).toEqual([]);
  });

  it('slirp4netns and the namespace holder live as long as the step, also when it is cancelled', async () => {
    const s = await scratch(runtime);
    for (const cancel of [false, true]) {
      const abort = new AbortController();
      let output = '';
      const step = s.sandbox.run(stepConfig(cancel ? 'echo started; sleep 1000' : 'echo started; sleep 1', { network: ['host'] }), s.rootfs, {
        onOutput: (c) => (output += Buffer.from(c).toString()),
        signal: abort.signal,
      });
      void step.catch(() => undefined);
      await waitFor(() => output.includes('started'), 'the step to start');
      const during = await networkProcesses(process.pid);
      expect(during).toHaveLength(2);
      if (cancel) abort.abort();
      if (cancel) await expect(step).rejects.toBeInstanceOf(CancelledError);
      else await step;
      expect(during.filter((pid) => !gone(pid))).toEqual([]);
      expect(await s.containers()).toEqual([]);
    }
  });

  it('without slirp4netns, a (network host) step fails saying what to do, and leaves nothing running', async () => {
    const s = await scratch(runtime);
    // A PATH with everything the step needs but slirp4netns.
    const bin = join(s.dir, 'bin');
    await mkdir(bin);
    for (const command of ['sh', 'unshare', runtime]) await symlink((await execa('sh', ['-c', `command -v ${command}`])).stdout, join(bin, command));
    const saved = process.env.PATH;
    process.env.PATH = bin;
    let result;
    try {
      result = await s.attempt('echo never', { network: ['host'] });
      expect(await s.run('echo without network')).toBe('without network\n');
    } finally {
      process.env.PATH = saved;
    }
    expect(result.error).toBeInstanceOf(UserNetworkError);
    expect((result.error as Error).message).toMatch(
      /^\(network host\) needs slirp4netns, which is not on PATH: install it \(Debian: apt-get install slirp4netns\), or set the host network mode to "shared"/,
    );
    expect(result.output).toBe('');
    expect(await networkProcesses(process.pid)).toEqual([]);
    expect(await s.containers()).toEqual([]);
  });

  it('a worker SIGKILLed mid-step leaves no slirp4netns or holder behind', async () => {
    const s = await scratch(runtime);
    const worker = execa('node', ['--import', 'tsx', FIXTURE, runtime, s.stateDir, s.rootfs, 'host'], { reject: false });
    let output = '';
    worker.stdout.on('data', (c: Buffer) => (output += c.toString()));
    await waitFor(() => output.includes('started'), 'the worker to start its step');
    const network = await networkProcesses(worker.pid!);
    expect(network).toHaveLength(2);
    worker.kill('SIGKILL');
    await worker;
    await waitFor(() => network.every(gone), 'slirp4netns and the holder to exit', 5_000);
    // The step's container goes as any killed worker's does (runc-lifecycle.test.ts).
    await s.sandbox.init();
    expect(await s.containers()).toEqual([]);
  });
});

describe('stepResolvConf', () => {
  it("keeps the host's file when its nameservers are reachable", () => {
    const host = 'search example.org\nnameserver 10.255.255.53\nnameserver 192.0.2.53\noptions ndots:2\n';
    expect(stepResolvConf(host)).toBe(host);
  });

  it("drops nameservers on the host's loopback, IPv4 and IPv6", () => {
    expect(stepResolvConf('nameserver 127.0.0.1\nnameserver ::1\nnameserver 10.0.0.2\n')).toBe('nameserver 10.0.0.2\n');
  });

  it("falls back to systemd-resolved's upstream servers when only loopback ones are left", () => {
    const host = '# stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n';
    const upstream = '# upstream\nnameserver 192.0.2.1\nnameserver 127.0.0.2\nnameserver 2001:db8::1\nsearch lan\n';
    expect(stepResolvConf(host, upstream)).toBe('# stub\noptions edns0 trust-ad\nsearch lan\nnameserver 192.0.2.1\nnameserver 2001:db8::1\n');
    expect(stepResolvConf(host)).toBe('# stub\noptions edns0 trust-ad\nsearch lan\n');
  });
});
