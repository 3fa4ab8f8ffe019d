import type Docker from 'dockerode';
import type { SeccompMode } from './oci-config.js';
import type { RunConfig } from './sandbox.js';
import type { StepLimits } from './step-limits.js';

/** What the container runs on: Linux containers, or Windows containers in one isolation mode. */
export interface DockerPlatform {
  readonly os: 'linux' | 'windows';
  /** Windows only: `process` (shared kernel) or `hyperv` (a utility VM per container). */
  readonly isolation?: 'process' | 'hyperv';
}

export interface ContainerPlan {
  readonly name: string;
  readonly image: string;
  /** Host path of each secret's file, in `config.secrets` order. */
  readonly secretFiles: readonly string[];
  readonly stdin: boolean;
  /** The step's limits, already capped by the sandbox's (step-cgroup.ts). */
  readonly limits?: StepLimits;
  /** Docker applies its own default profile; `unconfined` turns it off (Linux only). */
  readonly seccomp?: SeccompMode;
  /** The network a `(network host)` step joins instead of the host's: Cairn's bridge, when isolated. */
  readonly hostNetworkName?: string;
}

/**
 * The Docker Engine API's container-create body for one step: pure, so that the Linux
 * and the Windows forms are tested without a daemon.
 *
 * - The command is `argv` exactly (the spec's shell already starts it: `/bin/sh -c` on
 *   Linux, `cmd /S /C` on Windows), with the image's Entrypoint cleared.
 * - Network: `[]` is `none`, `['host']` the host's or, isolated, `plan.hostNetworkName`
 *   (docker-sandbox.ts), any other single name a Docker network passed through (`nat` on
 *   Windows). Docker refuses a hostname with the host's network. On Linux, `none` is
 *   also NetworkDisabled: the daemon then builds no network sandbox (netns file, hosts
 *   and resolv.conf, libnetwork's endpoint bookkeeping), which cost more than half of
 *   each `start`, and runc gives the container a new namespace with only loopback, as
 *   the `none` sandbox has.
 * - Windows: a unix-looking cwd (`/app`) becomes `C:\app`, `/` in a drive path becomes `\`;
 *   the user is the name (root is ContainerAdministrator); isolation is set when given.
 * - Cache views are bind mounts; secrets are read-only bind mounts of host files, so their
 *   values are never in the container's writable layer, hence never in a commit.
 * - Limits are the daemon's: Memory with MemorySwap equal (no swap beyond it), PidsLimit,
 *   NanoCpus; Docker's own default seccomp profile applies unless `unconfined`.
 */
export function containerConfig(config: RunConfig, plan: ContainerPlan, platform: DockerPlatform): Docker.ContainerCreateOptions {
  const windows = platform.os === 'windows';
  const asked = networkMode(config.network);
  const network = asked === 'host' && plan.hostNetworkName !== undefined ? plan.hostNetworkName : asked;
  const path = (p: string) => (windows ? windowsPath(p) : p);
  const mounts: Docker.MountSettings[] = [
    ...config.mounts.map((m) => ({ Type: 'bind' as const, Source: m.src, Target: path(m.dst), ReadOnly: m.readonly ?? false })),
    ...config.secrets.map((s, i) => ({ Type: 'bind' as const, Source: plan.secretFiles[i]!, Target: path(s.target), ReadOnly: true })),
  ];
  const hostConfig: Docker.HostConfig = { NetworkMode: network, Mounts: mounts, AutoRemove: false };
  if (windows && platform.isolation) hostConfig.Isolation = platform.isolation;
  const { memoryBytes, pids, cpus } = plan.limits ?? {};
  if (memoryBytes !== undefined) Object.assign(hostConfig, { Memory: memoryBytes, MemorySwap: memoryBytes });
  if (pids !== undefined) hostConfig.PidsLimit = pids;
  if (cpus !== undefined) hostConfig.NanoCpus = Math.round(cpus * 1e9);
  if (plan.seccomp === 'unconfined' && !windows) hostConfig.SecurityOpt = ['seccomp=unconfined'];
  return {
    name: plan.name,
    Image: plan.image,
    Entrypoint: [],
    Cmd: [...config.argv],
    WorkingDir: path(config.cwd),
    Env: config.env.map(([k, v]) => `${k}=${v}`),
    User: userOf(config, windows),
    ...(network === 'host' ? {} : { Hostname: config.hostname }),
    ...(network === 'none' && !windows ? { NetworkDisabled: true } : {}),
    Labels: { 'cairn.sandbox': '1' },
    Tty: false,
    AttachStdin: plan.stdin,
    OpenStdin: plan.stdin,
    StdinOnce: plan.stdin,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: hostConfig,
  };
}

export function networkMode(network: readonly string[]): string {
  if (network.length === 0) return 'none';
  if (network.length > 1) throw new Error(`the docker sandbox joins one network, not ${network.length}: ${network.join(', ')}`);
  return network[0]!;
}

function userOf(config: RunConfig, windows: boolean): string {
  const user = config.user;
  if (user.kind === 'unix') {
    if (windows) throw new Error(`a Windows container runs as a named user, not uid ${user.uid}`);
    return `${user.uid}:${user.gid}`;
  }
  return user.name;
}

/** `/app/x` -> `C:\app\x`; `D:/x` -> `D:\x`; `C:\x` unchanged. */
export function windowsPath(p: string): string {
  const drive = /^[A-Za-z]:/.test(p) ? p.slice(0, 2) : 'C:';
  const rest = /^[A-Za-z]:/.test(p) ? p.slice(2) : p;
  const body = rest.replace(/\//g, '\\');
  return `${drive.toUpperCase()}${body.startsWith('\\') ? body : `\\${body}`}`;
}

/**
 * Splits Docker's multiplexed attach stream (8-byte headers: stream type, 3 zero bytes,
 * big-endian length) into payloads, in arrival order, for one output callback.
 */
export class Demuxer {
  private pending = Buffer.alloc(0);

  constructor(private readonly onPayload: (chunk: Uint8Array) => void) {}

  push(chunk: Uint8Array): void {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      if (size > 0) this.onPayload(this.pending.subarray(8, 8 + size));
      this.pending = this.pending.subarray(8 + size);
    }
  }
}
