import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { containerConfig, Demuxer, type DockerPlatform } from './docker-containers.js';
import { CancelledError, StepFailedError, type RunConfig, type RunOptions, type Sandbox } from './sandbox.js';

export interface DockerSandboxOptions {
  /** The daemon's socket; default `/var/run/docker.sock`. */
  readonly socketPath?: string;
  /** Default Linux. */
  readonly platform?: DockerPlatform;
  /** Where secret files are written before they are bind-mounted; default the OS temp dir. */
  readonly secretsDir?: string;
}

/** What the docker store writes next to `rootfs` (see DockerStore in @cairn/store). */
interface DockerBuildFile {
  readonly base: string | null;
  readonly target: string;
}

/** Only containers with this prefix (and our label) are ours to remove in init(). */
const PREFIX = 'cairn-run-';

/**
 * Runs each step in a Docker container: the Windows path, and a Linux one. It works only
 * with the docker store, whose build directories hold `docker.json` next to `rootfs`: the
 * container is created from `base` (or from `target` when an earlier run of the same step
 * has committed), and committed to `target` once the command exits 0, keeping the image's
 * own Entrypoint and Cmd. The container is removed in every case.
 */
export class DockerSandbox implements Sandbox {
  readonly kind = 'docker';
  private client: Promise<Docker> | undefined;
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
      await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
    }
  }

  async run(config: RunConfig, rootfs: string, options: RunOptions): Promise<void> {
    options.signal?.throwIfAborted();
    const build = JSON.parse(await readFile(join(dirname(rootfs), 'docker.json'), 'utf8')) as DockerBuildFile;
    const docker = await this.docker;
    const committed = await docker.getImage(build.target).inspect().catch(() => undefined);
    const image = committed ?? (build.base === null ? undefined : await docker.getImage(build.base).inspect());
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
      container = await docker.createContainer(containerConfig(config, { name, image: image.Id, secretFiles, stdin }, this.platform));
      const status = await this.runContainer(container, options, stdin);
      if (status !== 0) throw new StepFailedError(status);
      const colon = build.target.lastIndexOf(':');
      await container.commit({
        _query: { container: container.id, repo: build.target.slice(0, colon), tag: build.target.slice(colon + 1) },
        _body: { Entrypoint: image.Config?.Entrypoint ?? null, Cmd: image.Config?.Cmd ?? null },
      });
    } catch (e) {
      // A killed container's exit status (137) or a broken stream is the cancellation's doing.
      if (options.signal?.aborted) throw new CancelledError();
      throw e;
    } finally {
      if (container) await container.remove({ force: true, v: true }).catch(() => undefined);
      if (secretsDir) await rm(secretsDir, { recursive: true, force: true });
    }
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

/** Writes `input` to the container's stdin, then half-closes it so the command sees EOF. */
async function feed(stream: Duplex, input: AsyncIterable<Uint8Array> | Uint8Array): Promise<void> {
  const write = (chunk: Uint8Array) =>
    new Promise<void>((resolve, reject) => stream.write(chunk, (e) => (e ? reject(e) : resolve())));
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

