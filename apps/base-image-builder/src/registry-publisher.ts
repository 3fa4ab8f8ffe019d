/**
 * Publishing to an OCI registry with libs/oci-image: a root filesystem becomes a
 * reproducible one-layer image (one manifest per platform under an index), pushed by
 * digest and then under each tag. The registry answers a tag only once every blob and
 * manifest it names is stored, so a tag never points at a partial image; and the same
 * root filesystem gives the same digest, so publishing again after a crash changes
 * nothing. Old digests are deleted from the registry by `prune` (retention).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { addDatasetStream, platformName, pushImage, writeOciImage, type ImageConfig, type PlatformImage } from '@cairn/oci-image';
import { writeDatasetStream } from '@cairn/store';

const run = promisify(execFile);
const PATH_ENV: readonly [string, string] = ['PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

export interface PublisherOptions {
  /**
   * A ZFS dataset (`POOL/DATASET`) on this machine: each image is then also published as a
   * ZFS dataset stream per platform, which ZFS workers receive instead of unpacking layers
   * (docs/zfs.md). Scratch datasets are made under it and destroyed once sent.
   */
  readonly zfsDataset?: string;
}

export class RegistryPublisher {
  /** `host:port` of the registry, as image names carry it. */
  readonly host: string;

  constructor(
    private readonly registryUrl: string,
    private readonly options: PublisherOptions = {},
  ) {
    this.host = new URL(registryUrl).host;
  }

  /** `host/repository@digest`: how a job names exactly this image. */
  pinned(repository: string, digest: string): string {
    return `${this.host}/${repository}@${digest}`;
  }

  /** Publishes `rootfs` as `repository` under every one of `tags`; returns the image (index) digest. */
  async publishRootfs(repository: string, tags: readonly string[], rootfs: string, platforms: readonly string[]): Promise<string> {
    const layout = await mkdtemp(join(tmpdir(), 'cairn-base-image-'));
    try {
      const inputs = platforms.map((p) => ({ rootfs, config: configOf(p) }));
      let image = await writeOciImage(layout, `${repository}:${tags[0]}`, inputs);
      for (const platform of this.options.zfsDataset === undefined ? [] : image.images) {
        image = await addDatasetStream(image, platform.platform, await this.datasetStream(repository, rootfs, platform, layout));
      }
      for (const tag of tags) await pushImage(image, `${this.host}/${repository}:${tag}`, { plainHttp: true });
      return image.index.digest;
    } finally {
      await rm(layout, { recursive: true, force: true });
    }
  }

  /** `rootfs` as the ZFS dataset stream of `platform`'s image, in a file of the layout's directory. */
  private async datasetStream(repository: string, rootfs: string, platform: PlatformImage, layout: string): Promise<string> {
    const name = platformName(platform.platform);
    const file = join(layout, `${name.replaceAll('/', '-')}.zfs`);
    await writeDatasetStream({
      dataset: `${this.options.zfsDataset}/${repository.replaceAll('/', '-')}`,
      rootfs,
      // The env the image's config has, as the engine would read it from the layers' image.
      metadata: { env: configOf(name).env ?? [], digest: platform.manifest.digest },
      snapshot: platform.manifest.digest.replace(':', '-'),
      log: `${this.host}/${repository} ${name} ${platform.manifest.digest}: received as a ZFS dataset stream`,
      file,
    });
    return file;
  }

  /** Publishes the root filesystem in the tar file `tarFile` (a build job's export). */
  async publishTar(repository: string, tags: readonly string[], tarFile: string, platforms: readonly string[]): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-base-rootfs-'));
    try {
      const rootfs = join(dir, 'rootfs');
      await mkdir(rootfs, { mode: 0o755 });
      await run('tar', ['-xpf', tarFile, '-C', rootfs, '--numeric-owner'], { maxBuffer: 16 * 1024 * 1024 });
      // The export leaves out the sandbox's mounts and /tmp: an image has them empty.
      for (const d of ['proc', 'sys', 'dev', 'tmp']) await mkdir(join(rootfs, d), { recursive: true, mode: 0o755 });
      await chmod(join(rootfs, 'tmp'), 0o1777);
      return await this.publishRootfs(repository, tags, rootfs, platforms);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Deletes a digest no tag names any more; false when the registry does not allow deletes. */
  async prune(repository: string, digest: string): Promise<boolean> {
    const res = await fetch(`${this.registryUrl.replace(/\/$/, '')}/v2/${repository}/manifests/${digest}`, { method: 'DELETE' });
    await res.body?.cancel();
    return res.ok || res.status === 404;
  }
}

function configOf(platform: string): ImageConfig {
  const [os, architecture, variant] = platform.split('/');
  return { env: [PATH_ENV], os: os!, architecture: architecture!, ...(variant ? { variant } : {}) };
}
