import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, readlink } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * User-mode networking for a `(network host)` step: the step gets a network namespace of
 * its own whose only way out is slirp4netns, a process in the host's namespace that
 * turns the step's packets into ordinary sockets of its own. So the step reaches what the
 * host reaches (the registries, the mirrors, other machines, servers in other network
 * namespaces), but not the host's loopback: `--disable-host-loopback` refuses 10.0.2.2
 * (slirp's alias for the host's 127.0.0.1), and the step has no CAP_NET_RAW
 * (ociConfig), without which it cannot hand slirp a raw frame addressed to 127.0.0.1,
 * which slirp would otherwise connect to. The only module that invokes unshare and
 * slirp4netns.
 *
 * Both processes are this process's children and live exactly as long as it wants:
 * the namespace's holder exits when its stdin closes, slirp4netns when its exit fd does,
 * and both close when this process closes them or dies (a worker killed mid-step leaves
 * neither behind).
 */
export interface UserNetwork {
  /** The namespace the step joins: `/proc/PID/ns/net` of the holder. */
  readonly netns: string;
  /** Settles once slirp4netns has configured tap0 in the namespace (rejects if it failed). */
  readonly ready: Promise<void>;
  /** Stops slirp4netns and the holder; resolves once both have exited. */
  close(): Promise<void>;
}

/**
 * `--configure`: tap0 gets 10.0.2.100/24 and the default route through 10.0.2.2; MTU
 * 65520 as rootless Docker and Podman use (fewer, larger packets through slirp);
 * `--enable-sandbox` and `--enable-seccomp`: slirp4netns parses the step's packets, so it
 * runs in an empty mount namespace, without capabilities and with a system-call filter.
 * No IPv6: the step has none, so the host's ::1 is out of reach too.
 */
export const SLIRP4NETNS_ARGS = ['--configure', '--mtu=65520', '--disable-host-loopback', '--enable-sandbox', '--enable-seccomp'] as const;

export class UserNetworkError extends Error {
  override readonly name = 'UserNetworkError';
}

const MISSING =
  'install it (Debian: apt-get install slirp4netns), or set the host network mode to "shared" (CAIRN_HOST_NETWORK=shared, hostNetwork in the machine config) to give such steps the host\'s own network namespace as before';

export async function startUserNetwork(): Promise<UserNetwork> {
  // `echo` says the namespace exists; `read` returns at EOF, when we close stdin or die.
  const holder = spawn('unshare', ['--net', '--', '/bin/sh', '-c', 'echo; read _'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const holderExit = exitOf(holder);
  const holderErr = collect(holder.stderr!);
  try {
    await firstByte(holder.stdout!, holderExit, async (e) => `unshare --net failed: ${e.error?.message ?? (await holderErr())}`);
    const netns = `/proc/${holder.pid}/ns/net`;
    // Never configure the host's own namespace (tap0 and a default route) by mistake.
    if ((await readlink(netns)) === (await readlink('/proc/self/ns/net')))
      throw new UserNetworkError('unshare --net left the step in the host network namespace');
    // fd 3: slirp4netns writes "1" there once tap0 is up; fd 4: it exits when that closes.
    const slirp = spawn('slirp4netns', [...SLIRP4NETNS_ARGS, '--ready-fd=3', '--exit-fd=4', String(holder.pid), 'tap0'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
    });
    const slirpExit = exitOf(slirp);
    const slirpErr = collect(slirp.stderr!);
    const ready = firstByte(slirp.stdio[3] as Readable, slirpExit, async (e) =>
      e.error?.code === 'ENOENT'
        ? `(network host) needs slirp4netns, which is not on PATH: ${MISSING}`
        : `slirp4netns failed: ${e.error?.message ?? (await slirpErr())}`,
    );
    ready.catch(() => undefined);
    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        (slirp.stdio[4] as Readable).destroy();
        holder.stdin!.destroy();
        await Promise.all([stopped(slirp, slirpExit), stopped(holder, holderExit)]);
      })());
    return { netns, ready, close };
  } catch (e) {
    holder.stdin!.destroy();
    await stopped(holder, holderExit);
    throw e;
  }
}

/**
 * The /etc/resolv.conf of a step with user-mode networking: the host's, less the
 * nameservers on the host's loopback (systemd-resolved's 127.0.0.53, a local dnsmasq),
 * which the step cannot reach; when that leaves none, the upstream servers
 * systemd-resolved lists (`upstream`), else none at all. The other servers the step
 * reaches through slirp4netns as the host does.
 */
export function stepResolvConf(host: string, upstream?: string): string {
  const nameserver = /^\s*nameserver\s+(\S+)/;
  const reachable = (line: string) => {
    const address = nameserver.exec(line)?.[1];
    return address === undefined || !(address.startsWith('127.') || address === '::1');
  };
  const lines = host.split('\n').filter(reachable);
  if (!lines.some((l) => nameserver.test(l)) && upstream !== undefined) {
    const servers = upstream.split('\n').filter((l) => nameserver.test(l) && reachable(l));
    lines.splice(lines.at(-1) === '' ? lines.length - 1 : lines.length, 0, ...servers);
  }
  return lines.join('\n');
}

/** stepResolvConf of this host's files. */
export async function hostStepResolvConf(): Promise<string> {
  const host = await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
  const upstream = await readFile('/run/systemd/resolve/resolv.conf', 'utf8').catch(() => undefined);
  return stepResolvConf(host, upstream);
}

type Exit = { code: number | null; signal: NodeJS.Signals | null; error?: NodeJS.ErrnoException };

function exitOf(child: ChildProcess): Promise<Exit> {
  return new Promise((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** Resolves at the stream's first byte; rejects with `message` if the process exits (or cannot start) first. */
function firstByte(stream: Readable, exit: Promise<Exit>, message: (exit: Exit) => Promise<string>): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    stream.once('data', () => {
      settled = true;
      resolve();
    });
    void exit.then(async (e) => {
      if (!settled) reject(new UserNetworkError(await message(e)));
    });
  });
}

/** The stream's first 4 KiB as text, once it has ended (or after a second). */
function collect(stream: Readable): () => Promise<string> {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    if (text.length < 4096) text += chunk;
  });
  const ended = new Promise<void>((resolve) => stream.once('close', resolve));
  return async () => {
    await Promise.race([ended, sleep(1000, undefined, { ref: false })]);
    return text.trim() || '(no message)';
  };
}

/** Waits for the child to exit after its pipe closed, SIGKILLing it after 5 s. */
async function stopped(child: ChildProcess, exit: Promise<Exit>): Promise<void> {
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exit;
  clearTimeout(timer);
}
