import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { containerConfig, Demuxer, networkMode, type DockerPlatform } from './docker-containers.js';
import type { SeccompMode } from './oci-config.js';
import { CancelledError, LimitReachedError, StepFailedError, type HostNetworkMode, type RunConfig, type RunOptions, type Sandbox } from './sandbox.js';
import { refusedForks } from './step-cgroup.js';
import { capLimits, formatBytes, type StepLimits } from './step-limits.js';

export interface DockerSandboxOptions {
  /** The daemon's socket; default `/var/run/docker.sock`. */
  readonly socketPath?: string;
  /** Default Linux. */
  readonly platform?: DockerPlatform;
  /** Where secret files are written before they are bind-mounted; default the OS temp dir. */
  readonly secretsDir?: string;
  /** Every step's limits, and the most a job may ask for (step-cgroup.ts). */
  readonly limits?: StepLimits;
  /** `default`: Docker's default profile; `unconfined` for trusted pools. */
  readonly seccomp?: SeccompMode;
  /** What a `(network host)` step gets on Linux (HostNetworkMode). Default `isolated`. */
  readonly hostNetwork?: HostNetworkMode;
}

/**
 * The bridge network an isolated `(network host)` step joins: the daemon routes (and,
 * with its iptables rules, masquerades) what the step sends out, and the step's
 * 127.0.0.1 is its own, so a service the host binds to loopback only (NATS, a worker's
 * metrics) is out of its reach, as with slirp4netns for runc.
 */
export const STEP_NETWORK = 'cairn-steps';

/** An image as a step needs it: what to create the container from, and what its commit keeps. */
interface DockerImage {
  readonly id: string;
  readonly entrypoint: string[] | null;
  readonly cmd: string[] | null;
}

/** What the docker store writes next to `rootfs` (see DockerStore in @cairn/store). */
interface DockerBuildFile {
  readonly base: string | null;
  /** The base's image as the store found it; without it the sandbox inspects `base`. */
  readonly baseImage?: DockerImage;
  readonly target: string;
  /** Written back by the sandbox once a run committed: the next run starts from it. */
  readonly committed?: DockerImage;
}

/** Only containers with this prefix (and our label) are ours to remove in init(). */
const PREFIX = 'cairn-run-';

/**
 * Runs each step in a Docker container: the Windows path, and a Linux one. It works only
 * with the docker store, whose build directories hold `docker.json` next to `rootfs`: the
 * container is created from `base` (or from what an earlier run of the same step
 * committed), and committed to `target` once the command exits 0 if it changed a file,
 * keeping the image's own Entrypoint and Cmd. The container is removed in every case.
 *
 * A step costs the daemon create, attach, start, wait, changes, commit and remove: images
 * are known from docker.json (no inspect), and a step without network gets no network
 * sandbox at all (docker-containers.ts), which is most of what `start` cost.
 */
export class DockerSandbox implements Sandbox {
  readonly kind = 'docker';
  private client: Promise<Docker> | undefined;
  private network: Promise<void> | undefined;
  private readonly platform: DockerPlatform;

  constructor(private readonly options: DockerSandboxOptions = {}) {
    this.platform = options.platform ?? { os: 'linux' };
  }

  private get docker(): Promise<Docker> {
    this.client ??= import('dockerode').then(({ default: Dockerode }) => new Dockerode({ socketPath: this.options.socketPath ?? '/var/run/docker.sock' }));
    return this.client;
  }

  /** Removes every container a dead process's run left behind (named `cairn-run-<pid>-...`). */
  async init(): Promise<void> {
    const docker = await this.docker;
    for (const c of await docker.listContainers({ all: true, filters: { label: ['cairn.sandbox=1'] } })) {
      const name = (c.Names[0] ?? '').replace(/^\//, '');
      if (!name.startsWith(PREFIX)) continue;
      const pid = Number(name.slice(PREFIX.length).split('-')[0]);
      if (pid === process.pid || isAlive(pid)) continue;
      await docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => undefined);
    }
  }

  async run(config: RunConfig, rootfs: string, options: RunOptions): Promise<void> {
    options.signal?.throwIfAborted();
    const buildFile = join(dirname(rootfs), 'docker.json');
    const build = JSON.parse(await readFile(buildFile, 'utf8')) as DockerBuildFile;
    const docker = await this.docker;
    const image = build.committed ?? build.baseImage ?? (build.base === null ? undefined : imageOf(await docker.getImage(build.base).inspect()));
    if (image === undefined) throw new Error('the docker sandbox has no image to start from: this step has neither a parent nor an earlier commit');
    const secretsDir = config.secrets.length > 0 ? await mkdtemp(join(this.options.secretsDir ?? tmpdir(), 'cairn-secrets-')) : undefined;
    let container: Docker.Container | undefined;
    try {
      const secretFiles: string[] = [];
      for (const [i, s] of config.secrets.entries()) {
        const file = join(secretsDir!, String(i));
        await writeFile(file, s.value, { mode: 0o444 });
        await chmod(file, 0o444);
        secretFiles.push(file);
      }
      const name = `${PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`;
      const stdin = options.stdin !== undefined;
      const limits = capLimits(options.limits, this.options.limits);
      const isolated = this.platform.os === 'linux' && (this.options.hostNetwork ?? 'isolated') === 'isolated' && networkMode(config.network) === 'host';
      if (isolated) await this.stepNetwork(docker);
      const plan = {
        name,
        image: image.id,
        secretFiles,
        stdin,
        ...(limits ? { limits } : {}),
        ...(this.options.seccomp ? { seccomp: this.options.seccomp } : {}),
        ...(isolated ? { hostNetworkName: STEP_NETWORK } : {}),
      };
      container = await docker.createContainer(containerConfig(config, plan, this.platform));
      const pids = limits?.pids === undefined ? undefined : watchPids(container);
      const status = await this.runContainer(container, options, stdin).finally(() => pids?.stop());
      if (pids?.reached()) throw new LimitReachedError(`pids limit ${limits!.pids} reached`, status);
      if (status !== 0) {
        const oomKilled = limits?.memoryBytes !== undefined && (await container.inspect().catch(() => undefined))?.State?.OOMKilled === true;
        throw oomKilled ? new LimitReachedError(`killed: out of memory (limit ${formatBytes(limits.memoryBytes!)})`, status) : new StepFailedError(status);
      }
      // A step that changed no file (Linux: the daemon's diff of the container's layer is
      // empty) has its base as its result, which the store tags: a commit would only add
      // an empty layer. Windows always commits, its layer is never empty.
      if (this.platform.os === 'linux' && changeCount(await container.changes()) === 0) return;
      const colon = build.target.lastIndexOf(':');
      // Tagged in the same call: the store publishes the target tag as it is.
      const { Id } = (await container.commit({
        _query: { container: container.id, repo: build.target.slice(0, colon), tag: build.target.slice(colon + 1) },
        _body: { Entrypoint: image.entrypoint, Cmd: image.cmd },
      })) as { Id: string };
      const committed: DockerImage = { id: Id, entrypoint: image.entrypoint, cmd: image.cmd };
      await writeFile(buildFile, JSON.stringify({ ...build, committed }));
    } catch (e) {
      // A killed container's exit status (137) or a broken stream is the cancellation's doing.
      if (options.signal?.aborted) throw new CancelledError();
      throw e;
    } finally {
      await Promise.all([
        container?.remove({ force: true, v: true }).catch(() => undefined),
        secretsDir === undefined ? undefined : rm(secretsDir, { recursive: true, force: true }),
      ]);
    }
  }

  /** Creates the step network once; another process creating it first is as good. */
  private async stepNetwork(docker: Docker): Promise<void> {
    this.network ??= (async () => {
      const existing = await docker.listNetworks({ filters: { name: [STEP_NETWORK] } });
      if (existing.some((n) => n.Name === STEP_NETWORK)) return;
      await docker.createNetwork({ Name: STEP_NETWORK, Driver: 'bridge', Labels: { 'cairn.sandbox': '1' } }).catch((e: unknown) => {
        if ((e as { statusCode?: number }).statusCode !== 409) throw e;
      });
    })().catch((e: unknown) => {
      this.network = undefined;
      throw e;
    });
    return this.network;
  }

  /** Starts the container with its streams attached; resolves to its exit status once its output is all read. */
  private async runContainer(container: Docker.Container, options: RunOptions, stdin: boolean): Promise<number> {
    const signal = options.signal;
    const stream = (await container.attach({ stream: true, stdin, stdout: true, stderr: true, hijack: stdin })) as Duplex;
    const demux = new Demuxer(options.onOutput);
    const ended = new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => demux.push(chunk));
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    });
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      // The contract: the container is gone when run settles, so reject only once it is.
      onAbort = () => {
        void container
          .remove({ force: true, v: true })
          .catch(() => undefined)
          .then(() => {
            stream.destroy();
            reject(new CancelledError());
          });
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    try {
      await Promise.race([container.start(), aborted]);
      if (stdin) void feed(stream, options.stdin!).catch(() => stream.destroy());
      // After start, and `not-running`: a `next-exit` wait sent before start can reach the
      // daemon after a quick command has already exited, and then waits forever.
      const exit = container.wait({ condition: 'not-running' }) as Promise<{ StatusCode: number }>;
      exit.catch(() => undefined);
      const { StatusCode } = await Promise.race([exit, aborted]);
      await Promise.race([ended, aborted]);
      if (signal?.aborted) await aborted;
      return StatusCode;
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** How often a running step's cgroup is read for its pids limit, as the runc sandbox does. */
const PIDS_POLL_MS = 200;

/**
 * The daemon enforces PidsLimit but says nothing of it, and a fork bomb would sit at the
 * limit for ever: as the runc sandbox does, the container's pids cgroup is read while it
 * runs (the daemon's containers are this host's processes) and the container is killed
 * at the first refused fork. A daemon on another host leaves the step to its timeout.
 */
function watchPids(container: Docker.Container): { stop(): void; reached(): boolean } {
  let stopped = false;
  let reached = false;
  void (async () => {
    let pid: number | undefined;
    while (!stopped && !reached) {
      await new Promise((r) => setTimeout(r, PIDS_POLL_MS));
      pid ||= (await container.inspect().catch(() => undefined))?.State?.Pid || undefined;
      if (pid !== undefined && !stopped && (await refusedForks(pid)) > 0) {
        reached = true;
        await container.kill().catch(() => undefined);
      }
    }
  })();
  return { stop: () => void (stopped = true), reached: () => reached };
}

/**
 * The length of `GET /containers/{id}/changes`'s list, which is `null` when empty (and
 * dockerode hands that over unparsed). Anything else unexpected counts as a change: a
 * commit too many is only slower.
 */
function changeCount(changes: unknown): number {
  let list = changes;
  try {
    if (Buffer.isBuffer(changes)) list = JSON.parse(changes.toString()) as unknown;
  } catch {
    return 1;
  }
  return Array.isArray(list) ? list.length : list === null ? 0 : 1;
}

function imageOf(info: Docker.ImageInspectInfo): DockerImage {
  return { id: info.Id, entrypoint: (info.Config?.Entrypoint as string[] | null | undefined) ?? null, cmd: info.Config?.Cmd ?? null };
}

/** Writes `input` to the container's stdin, then half-closes it so the command sees EOF. */
async function feed(stream: Duplex, input: AsyncIterable<Uint8Array> | Uint8Array): Promise<void> {
  const write = (chunk: Uint8Array) => new Promise<void>((resolve, reject) => stream.write(chunk, (e) => (e ? reject(e) : resolve())));
  if (input instanceof Uint8Array) await write(input);
  else for await (const chunk of input) await write(chunk);
  stream.end();
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
