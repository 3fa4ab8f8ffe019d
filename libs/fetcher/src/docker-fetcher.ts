import type Docker from 'dockerode';
import { FetchError, type FetchedImage, type Fetcher } from './fetcher.js';
import { imageName, parseImageRef } from './image-ref.js';
import { applyLayer } from './layers.js';
import { splitEnv } from './oci-documents.js';

export interface DockerFetcherOptions {
  /** The daemon's socket; default `/var/run/docker.sock`. */
  readonly socketPath?: string;
}

/**
 * Images from a local Docker daemon, which must already have them: Cairn never pulls.
 * The filesystem comes from exporting a created (never started) container, so the
 * result is the image as Docker flattens it; the container is removed afterwards.
 * The digest is the image ID, the digest of its config: images built or imported
 * locally have no other. A pinned `name@sha256:...` is looked up by that ID, or else by
 * a registry digest the daemon recorded when it pulled the image.
 */
export class DockerFetcher implements Fetcher {
  readonly kind = 'docker';
  private client: Promise<Docker> | undefined;
  readonly socketPath: string;

  constructor(options: DockerFetcherOptions = {}) {
    this.socketPath = options.socketPath ?? '/var/run/docker.sock';
  }

  /** dockerode (and the gRPC and SSH stacks it loads) only for builds that use Docker: it costs every `cairn` start 100 ms otherwise. */
  private get docker(): Promise<Docker> {
    this.client ??= import('dockerode').then(({ default: Dockerode }) => new Dockerode({ socketPath: this.socketPath }));
    return this.client;
  }

  async fetch(image: string, rootfs: string, log: (line: string) => void): Promise<FetchedImage> {
    const info = await this.inspect(image);
    log(`resolved ${image} to ${info.Id}`);
    // Docker will not create a container from an image without a command, even one that
    // never runs; this one only satisfies that check.
    const container = await (await this.docker).createContainer({ Image: info.Id, Cmd: ['/cairn-export'], NetworkDisabled: true });
    try {
      await applyLayer(rootfs, (await container.export()) as AsyncIterable<Buffer>);
    } finally {
      await container.remove({ force: true, v: true });
    }
    const { WorkingDir: workingDir, User: user } = info.Config ?? {};
    return { env: splitEnv(info.Config?.Env ?? []), ...(workingDir ? { workingDir } : {}), ...(user ? { user } : {}), digest: info.Id };
  }

  /** The image ID, as `fetch` would report it. */
  async resolve(image: string): Promise<string> {
    return (await this.inspect(image)).Id;
  }

  private async inspect(image: string): Promise<Docker.ImageInspectInfo> {
    const { digest, ...ref } = parseImageRef(image);
    if (digest === undefined) return this.lookup(image, image);
    const info = (await this.lookup(digest, image, true)) ?? (await this.lookup(`${imageName(ref)}@${digest}`, image));
    const registryDigests = info.RepoDigests ?? [];
    if (info.Id !== digest && !registryDigests.some((d) => d.endsWith(`@${digest}`))) {
      throw new FetchError(`the Docker daemon at ${this.socketPath} has ${info.Id} for ${image}, not the pinned ${digest}`);
    }
    return info;
  }

  private async lookup(name: string, image: string, absentIsUndefined: true): Promise<Docker.ImageInspectInfo | undefined>;
  private async lookup(name: string, image: string): Promise<Docker.ImageInspectInfo>;
  private async lookup(name: string, image: string, absentIsUndefined = false): Promise<Docker.ImageInspectInfo | undefined> {
    try {
      return await (await this.docker).getImage(name).inspect();
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) {
        if (absentIsUndefined) return undefined;
        throw new FetchError(`no image ${image} in the Docker daemon at ${this.socketPath} (Cairn never pulls)`);
      }
      throw new FetchError(`cannot ask the Docker daemon at ${this.socketPath} about ${image}: ${(e as Error).message}`);
    }
  }
}
