import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';

/**
 * The one module of @cairn/store that talks to the Docker Engine API: images (import,
 * tag, untag, inspect, export) and volumes. DockerStore says what to do; this says how.
 * dockerode is loaded on first use only, so that stores that never touch Docker do not
 * pay for loading it.
 */
export class DockerImages {
  private client: Promise<Docker> | undefined;

  constructor(readonly socketPath: string) {}

  get docker(): Promise<Docker> {
    this.client ??= import('dockerode').then(({ default: Dockerode }) => new Dockerode({ socketPath: this.socketPath }));
    return this.client;
  }

  /** The image's inspect data, or undefined when there is no such image. */
  async inspect(ref: string): Promise<Docker.ImageInspectInfo | undefined> {
    try {
      return await (await this.docker).getImage(ref).inspect();
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw e;
    }
  }

  async tag(src: string, ref: string): Promise<void> {
    const { repo, tag } = splitRef(ref);
    await (await this.docker).getImage(src).tag({ repo, tag });
  }

  /** Removes the tag `ref` (and the image once no tag, child or container holds it). Missing is fine. */
  async untag(ref: string): Promise<void> {
    try {
      await (await this.docker).getImage(ref).remove({ noprune: false });
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
  }

  /** Every tag in the daemon whose repository is `repo`, as `repo:tag`. */
  async tagsOf(repo: string): Promise<string[]> {
    const images = await (await this.docker).listImages({ filters: { reference: [`${repo}:*`] } });
    return images.flatMap((i) => (i.RepoTags ?? []).filter((t) => t.startsWith(`${repo}:`)));
  }

  /** Tags (of repositories starting with `prefix`) of images whose parent is `imageId`. */
  async childTags(imageId: string, prefix: string): Promise<string[]> {
    const images = await (await this.docker).listImages({ all: true });
    return images.filter((i) => i.ParentId === imageId).flatMap((i) => (i.RepoTags ?? []).filter((t) => t.startsWith(prefix)));
  }

  /** Names of containers (running or not) created from `ref`. */
  async containersOf(ref: string): Promise<string[]> {
    const containers = await (await this.docker).listContainers({ all: true, filters: { ancestor: [ref] } });
    return containers.map((c) => (c.Names[0] ?? c.Id).replace(/^\//, ''));
  }

  /**
   * `docker import` of the directory `rootfs` as `ref`, archived with numeric owners, with
   * `env` as the image's ENV.
   */
  async importRootfs(rootfs: string, ref: string, env: readonly (readonly [string, string])[]): Promise<void> {
    const { repo, tag } = splitRef(ref);
    const tar = spawn('tar', ['--numeric-owner', '-C', rootfs, '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const errors = collect(tar);
    const changes = env.map(([k, v]) => `ENV ${k}=${quoteEnv(v)}`);
    const docker = await this.docker;
    const progress = (await docker.importImage(tar.stdout as unknown as NodeJS.ReadableStream, { repo, tag, changes })) as NodeJS.ReadableStream;
    const messages = await readAll(progress as unknown as Readable);
    const status = await exitOf(tar);
    if (status !== 0) throw new Error(`cannot archive ${rootfs} for docker import: ${errors()}`);
    const error = /"error":\s*"([^"]*)"/.exec(messages);
    if (error) throw new Error(`docker import of ${rootfs} failed: ${error[1]}`);
  }

  /**
   * Writes `ref`'s whole filesystem into the directory `dest` (which exists) by exporting
   * a container created from it (never started), then removes the container.
   */
  async exportTo(ref: string, name: string, dest: string): Promise<void> {
    const docker = await this.docker;
    // Docker will not create a container from an image without a command, even one that never runs.
    const container = await docker.createContainer({ name, Image: ref, Cmd: ['/cairn-export'], NetworkDisabled: true, Labels: { 'cairn.export': '1' } });
    try {
      const stream = (await container.export()) as unknown as Readable;
      const tar = spawn('tar', ['--numeric-owner', '-xpf', '-', '-C', dest], { stdio: ['pipe', 'ignore', 'pipe'] });
      const errors = collect(tar);
      await pipeline(stream, tar.stdin!);
      if ((await exitOf(tar)) !== 0) throw new Error(`cannot unpack ${ref} into ${dest}: ${errors()}`);
    } finally {
      await container.remove({ force: true, v: true }).catch(() => undefined);
    }
  }

  /** Containers whose name starts with `prefix`. */
  async containersNamed(prefix: string): Promise<{ id: string; name: string }[]> {
    const containers = await (await this.docker).listContainers({ all: true, filters: { name: [prefix] } });
    return containers.flatMap((c) => c.Names.map((n) => ({ id: c.Id, name: n.replace(/^\//, '') }))).filter((c) => c.name.startsWith(prefix));
  }

  async removeContainer(id: string): Promise<void> {
    try {
      await (await this.docker).getContainer(id).remove({ force: true, v: true });
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
  }

  /** Creates the volume if needed; resolves to its directory on the daemon's host. */
  async volume(name: string, labels: Record<string, string> = {}): Promise<string> {
    const docker = await this.docker;
    const created = (await docker.createVolume({ Name: name, Labels: labels })) as { Mountpoint?: string };
    if (created.Mountpoint) return created.Mountpoint;
    return ((await docker.getVolume(name).inspect()) as { Mountpoint: string }).Mountpoint;
  }

  /** The volume's directory on the host, or undefined when there is no such volume. */
  async volumePath(name: string): Promise<string | undefined> {
    try {
      return ((await (await this.docker).getVolume(name).inspect()) as { Mountpoint: string }).Mountpoint;
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw e;
    }
  }

  async removeVolume(name: string): Promise<void> {
    try {
      await (await this.docker).getVolume(name).remove({ force: true });
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
  }

  /** Names of volumes starting with `prefix`. */
  async volumesNamed(prefix: string): Promise<string[]> {
    const { Volumes } = await (await this.docker).listVolumes({ filters: { name: [prefix] } });
    return (Volumes ?? []).map((v) => v.Name).filter((n) => n.startsWith(prefix));
  }

  /** The daemon's data root (`docker info`'s DockerRootDir). */
  async dataRoot(): Promise<string> {
    return ((await (await this.docker).info()) as { DockerRootDir: string }).DockerRootDir;
  }
}

/** `repo:tag` into its parts (the tag follows the last colon after the last slash). */
export function splitRef(ref: string): { repo: string; tag: string } {
  const colon = ref.lastIndexOf(':');
  if (colon < 0 || ref.indexOf('/', colon) >= 0) return { repo: ref, tag: 'latest' };
  return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
}

export function statusOf(e: unknown): number | undefined {
  return (e as { statusCode?: number } | undefined)?.statusCode;
}

/** A value for a Dockerfile-style `ENV k=v` change: double-quoted, `\` and `"` escaped. */
export function quoteEnv(value: string): string {
  return `"${value.replace(/[\\"$]/g, (c) => `\\${c}`)}"`;
}

function collect(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.on('data', (chunk: Buffer) => (text = (text + chunk.toString()).slice(-4000)));
  return () => text;
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
}

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString();
}
