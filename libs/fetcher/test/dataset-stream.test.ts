import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FetchError, OciLayoutFetcher, RegistryFetcher } from '@cairn/fetcher';
import { addDatasetStream, MediaType, pushImage, readOciImage, ZFS_DATASET_ARTIFACT, type OciImage } from '@cairn/oci-image';
import { busyboxImage } from '../../../test/support/images.js';
import { startRegistry, type RunningRegistry } from '../../../test/support/registry.js';

// A ZFS dataset stream beside an image's layers (docs/zfs.md), pushed to a real
// docker-registry and read back. The stream's bytes need not be a real `zfs send` here:
// the store's side is tested on zfs-fuse (apps/base-image-builder/test/zfs-publish.test.ts).
let work: string;
let layout: string;
let registry: RunningRegistry;
let streamBytes: Buffer;
let withStream: OciImage;
let plain: OciImage;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cairn-dataset-stream-'));
  layout = join(work, 'layout');
  registry = await startRegistry();
  streamBytes = randomBytes(300_000);
  await writeFile(join(work, 'stream.zfs'), streamBytes);
  plain = await busyboxImage(layout, 'plain:1');
  const image = await busyboxImage(layout, 'zfs:1');
  withStream = await addDatasetStream(image, image.images[0]!.platform, join(work, 'stream.zfs'));
  for (const [image, ref] of [
    [plain, 'plain:1'],
    [withStream, 'zfs:1'],
  ] as const) {
    await pushImage(image, `127.0.0.1:${registry.port}/${ref}`);
  }
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('an image with a ZFS dataset stream', () => {
  it('has the stream as an artifact entry of its index, for the platform of its image, which the layout reads back', async () => {
    expect(withStream.datasets).toHaveLength(1);
    expect(withStream.datasets[0]!.manifest).toMatchObject({ artifactType: ZFS_DATASET_ARTIFACT, platform: withStream.images[0]!.platform });
    expect(withStream.datasets[0]!.layers).toEqual([expect.objectContaining({ mediaType: MediaType.zfsStream, size: streamBytes.length })]);
    expect(withStream.index.digest).not.toBe(plain.index.digest);
    const read = await readOciImage(layout, 'zfs:1');
    expect(read.images.map((i) => i.manifest.digest)).toEqual(withStream.images.map((i) => i.manifest.digest));
    expect(read.datasets.map((d) => d.manifest.digest)).toEqual(withStream.datasets.map((d) => d.manifest.digest));
  });

  it('is fetched from the registry as the stream, byte for byte, by tag and pinned', async () => {
    const fetcher = new RegistryFetcher({ registry: registry.url });
    for (const ref of ['zfs:1', `zfs@${withStream.index.digest}`]) {
      const file = join(work, `fetched-${ref.replace(/[:@]/g, '-')}`);
      const log: string[] = [];
      const fetched = await fetcher.datasetStream(ref, file, (line) => log.push(line));
      expect(fetched).toEqual({ digest: withStream.datasets[0]!.manifest.digest, size: streamBytes.length });
      expect((await readFile(file)).equals(streamBytes)).toBe(true);
      expect(log.join('\n')).toContain(`a ZFS dataset stream for linux/amd64, ${withStream.datasets[0]!.layers[0]!.digest}`);
    }
  });

  it('still unpacks as an image from its layers: a fetch passes the stream by', async () => {
    const fetcher = new RegistryFetcher({ registry: registry.url });
    const rootfs = await mkdtemp(join(work, 'rootfs-'));
    const fetched = await fetcher.fetch('zfs:1', rootfs, () => undefined);
    expect(fetched.digest).toBe(withStream.images[0]!.manifest.digest);
    expect(await readdir(join(rootfs, 'bin'))).toContain('busybox');
  });

  it('offers no stream for another platform, nor when the image has none: the layers are unpacked then', async () => {
    const other = new RegistryFetcher({ registry: registry.url, platform: 'linux/arm64' });
    expect(await other.datasetStream('zfs:1', join(work, 'none-1'), () => undefined)).toBeUndefined();
    const fetcher = new RegistryFetcher({ registry: registry.url });
    expect(await fetcher.datasetStream('plain:1', join(work, 'none-2'), () => undefined)).toBeUndefined();
    expect(await readdir(work)).not.toContain('none-1');
  });

  it('refuses a stream whose bytes do not match its digest (OCI layout), naming it, and an artifact pinned as if it were an image', async () => {
    const fetcher = new OciLayoutFetcher(layout);
    const blob = join(layout, 'blobs', 'sha256', withStream.datasets[0]!.layers[0]!.digest.slice('sha256:'.length));
    const original = await readFile(blob);
    await writeFile(blob, Buffer.concat([original.subarray(0, 1000), Buffer.from('tampered'), original.subarray(1008)]));
    try {
      const error = await fetcher.datasetStream('zfs:1', join(work, 'tampered'), () => undefined).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FetchError);
      expect((error as Error).message).toMatch(new RegExp(`^ZFS dataset stream ${withStream.datasets[0]!.layers[0]!.digest} is corrupt`));
    } finally {
      await writeFile(blob, original);
    }
    const artifact = `zfs@${withStream.datasets[0]!.manifest.digest}`;
    const registryFetcher = new RegistryFetcher({ registry: registry.url });
    const rootfs = await mkdtemp(join(work, 'rootfs-'));
    await expect(registryFetcher.fetch(artifact, rootfs, () => undefined)).rejects.toThrow(
      `${artifact} names an artifact (${ZFS_DATASET_ARTIFACT}), not an image`,
    );
  });
});
