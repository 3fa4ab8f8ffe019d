import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { checkImageConfig, imageConfigDocument, platformName, platformOf, type ImageConfig, type ParentConfig } from './image-config.js';
import { hashing } from './hashing.js';
import { writeLayer } from './layer.js';
import { OciImageError } from './oci-image-error.js';
import { MediaType, REF_NAME, ZFS_DATASET_ARTIFACT, type Descriptor, type Platform } from './vocabulary.js';

/** One platform's image: its manifest and the blobs it names. */
export interface PlatformImage {
  readonly platform: Platform;
  readonly manifest: Descriptor;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

/**
 * An image written into an OCI layout: `index` is the image index (what a tag names in a
 * registry, and the image's digest), `images` one manifest per platform, and `datasets`
 * the same root filesystems as ZFS dataset streams (an artifact manifest each, `config`
 * empty and the stream its one layer), for ZFS stores to receive.
 */
export interface OciImage {
  readonly layoutDir: string;
  readonly ref: string;
  readonly index: Descriptor;
  readonly images: readonly PlatformImage[];
  readonly datasets: readonly PlatformImage[];
}

/** One platform of an image: a root filesystem (a store snapshot) and how it runs. */
export interface ImageInput {
  readonly rootfs: string;
  readonly config: ImageConfig;
}

export interface WriteImageOptions {
  /**
   * Seconds since the epoch given to every file and to the config's `created`; default 0.
   * Anything but a fixed value would make each export a different image.
   */
  readonly mtime?: number;
  /**
   * An image in the same layout to build on. Each platform's image then has the parent's
   * layers for that platform plus one layer of its `rootfs`, which holds only the changes
   * (deletions as whiteout files, `.wh.NAME` and `.wh..wh..opq`), and the parent's run
   * settings where its config sets none.
   */
  readonly parent?: string;
}

const REF = /^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/;

export const blobPath = (layoutDir: string, digest: string) => join(layoutDir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));

/** `ref` with `:latest` when it names neither tag nor digest: `name` and `name:latest` are one image. */
export function taggedRef(ref: string): string {
  return ref.includes('@') || ref.lastIndexOf(':') > ref.lastIndexOf('/') ? ref : `${ref}:latest`;
}

/** The image of `image` for `platform`; an OciImageError names the platforms it has otherwise. */
export function platformImage(image: OciImage, platform: Platform): PlatformImage {
  const want = platformName(platform);
  const found = image.images.find((i) => platformName(i.platform) === want);
  if (!found) {
    const has = image.images.map((i) => platformName(i.platform)).join(', ');
    throw new OciImageError(`image ${image.ref} has no ${want} platform (it has ${has})`);
  }
  return found;
}

/**
 * Writes an image of one layer per platform (the whole rootfs: a snapshot is complete,
 * there is no parent to diff against, unless `options.parent` names one) into the OCI
 * layout at `layoutDir`, created if needed, and names it `ref` in index.json, replacing
 * any image of that name. The same inputs give the same bytes, hence the same digests,
 * on every run.
 *
 *     const image = await writeOciImage('out/layout', 'cairn/worker:1', [
 *       { rootfs: snapshot, config: { env: [['PATH', '/usr/bin:/bin']], entrypoint: ['/usr/bin/node'] } },
 *     ]);
 *     await pushImage(image, '127.0.0.1:5000/cairn/worker:1');
 *
 * A layout takes one writer at a time: index.json is read, changed and replaced whole.
 */
export async function writeOciImage(layoutDir: string, ref: string, inputs: readonly ImageInput[], options: WriteImageOptions = {}): Promise<OciImage> {
  if (!REF.test(ref)) throw new OciImageError(`invalid image name ${JSON.stringify(ref)} for an OCI layout`);
  if (inputs.length === 0) throw new OciImageError(`image ${ref} has no platform to build`);
  const mtime = options.mtime ?? 0;
  if (!Number.isInteger(mtime) || mtime < 0) throw new OciImageError(`mtime must be whole seconds since the epoch, not ${mtime}`);
  const created = new Date(mtime * 1000).toISOString().replace('.000Z', 'Z');
  const parent = options.parent === undefined ? undefined : await readOciImage(layoutDir, options.parent);
  const platforms = new Set<string>();
  for (const { config, rootfs } of inputs) {
    const name = platformName(platformOf(config));
    checkImageConfig(config, `image ${ref} (${name}, from ${rootfs})`);
    if (platforms.has(name)) throw new OciImageError(`image ${ref} has two roots for platform ${name}`);
    platforms.add(name);
    if (parent) {
      try {
        platformImage(parent, platformOf(config));
      } catch (e) {
        throw new OciImageError(`image ${ref} cannot be built on its parent: ${(e as Error).message}`);
      }
    }
  }

  await mkdir(join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(layoutDir, 'oci-layout'), `${JSON.stringify({ imageLayoutVersion: '1.0.0' })}\n`);
  const images: PlatformImage[] = [];
  for (const { rootfs, config } of inputs) {
    const platform = platformOf(config);
    const base = parent && (await parentOf(parent, platform));
    const layerBlob = await putLayer(layoutDir, rootfs, mtime);
    const layers = [...(base?.layers ?? []), { mediaType: MediaType.layerGzip, digest: layerBlob.digest, size: layerBlob.size }];
    const configBlob = await putJson(layoutDir, MediaType.config, imageConfigDocument(config, [layerBlob.diffId], created, base?.config));
    const manifest = await putJson(layoutDir, MediaType.manifest, {
      schemaVersion: 2,
      mediaType: MediaType.manifest,
      config: configBlob,
      layers,
    });
    images.push({ platform, manifest: { ...manifest, platform }, config: configBlob, layers });
  }
  return putIndex({ layoutDir, ref, images, datasets: [] });
}

/**
 * Adds to `image` its root filesystem for `platform` as a ZFS dataset stream: the file
 * `stream` (`zfs send` of one snapshot of a dataset laid out as a store result, see
 * libs/store zfs-store.ts `receive`) becomes an artifact manifest in the image's index,
 * beside (or instead of an earlier stream for) that platform's image. The index, hence the
 * image's digest, changes: a job pinned to it gets the stream or the layers, never a mix.
 */
export async function addDatasetStream(image: OciImage, platform: Platform, stream: string): Promise<OciImage> {
  platformImage(image, platform);
  const { layoutDir } = image;
  const layer = { ...(await putFile(layoutDir, stream)), mediaType: MediaType.zfsStream };
  const config = await putJson(layoutDir, MediaType.empty, {});
  const manifest = await putJson(layoutDir, MediaType.manifest, {
    schemaVersion: 2,
    mediaType: MediaType.manifest,
    artifactType: ZFS_DATASET_ARTIFACT,
    config,
    layers: [layer],
  });
  const dataset = { platform, manifest: { ...manifest, platform, artifactType: ZFS_DATASET_ARTIFACT }, config, layers: [layer] };
  const others = image.datasets.filter((d) => platformName(d.platform) !== platformName(platform));
  return putIndex({ ...image, datasets: [...others, dataset] });
}

/** Writes the index of `image`'s platform images and dataset streams, and names it `image.ref`. */
async function putIndex(image: Omit<OciImage, 'index'>): Promise<OciImage> {
  const index = await putJson(image.layoutDir, MediaType.index, {
    schemaVersion: 2,
    mediaType: MediaType.index,
    manifests: [...image.images, ...image.datasets].map((i) => i.manifest),
  });
  await setRef(image.layoutDir, image.ref, index);
  return { ...image, index };
}

/** The image named `ref` in the layout at `layoutDir`, as `writeOciImage` wrote it. */
export async function readOciImage(layoutDir: string, ref: string): Promise<OciImage> {
  const entry = (await readIndexJson(layoutDir)).find((d) => named(d, ref));
  if (!entry) throw new OciImageError(`no image named ${ref} in the OCI layout ${layoutDir}`);
  const { annotations: _annotations, ...index } = entry;
  if (index.mediaType !== MediaType.index) throw new OciImageError(`${ref} in ${layoutDir} is not an image index`);
  const manifests = (await readJson(layoutDir, index.digest)).manifests as Descriptor[];
  const images: PlatformImage[] = [];
  const datasets: PlatformImage[] = [];
  for (const manifest of manifests) {
    const doc = await readJson(layoutDir, manifest.digest);
    const platform = manifest.platform ?? { architecture: 'unknown', os: 'unknown' };
    (manifest.artifactType === ZFS_DATASET_ARTIFACT ? datasets : images).push({
      platform,
      manifest,
      config: doc.config as Descriptor,
      layers: doc.layers as Descriptor[],
    });
  }
  return { layoutDir, ref, index, images, datasets };
}

/** Every blob of the image, each once: layers and configs first, then manifests, the index last. */
export function imageBlobs(image: OciImage): Descriptor[] {
  const manifests = [...image.images, ...image.datasets];
  const all = [...manifests.flatMap((i) => [...i.layers, i.config]), ...manifests.map((i) => i.manifest), image.index];
  return all.filter((d, n) => all.findIndex((o) => o.digest === d.digest) === n);
}

/** The layers and config an image built on `parent` takes from it for `platform`. */
async function parentOf(parent: OciImage, platform: Platform): Promise<{ layers: readonly Descriptor[]; config: ParentConfig }> {
  const image = platformImage(parent, platform);
  const doc = await readJson(parent.layoutDir, image.config.digest);
  const run = doc.config ?? {};
  const diffIds = (doc.rootfs as { diff_ids?: unknown } | undefined)?.diff_ids;
  const history = doc.history ?? [];
  const what = `the config ${image.config.digest} of the parent image ${parent.ref}`;
  if (typeof run !== 'object' || run === null || Array.isArray(run)) throw new OciImageError(`${what}: config is not an object`);
  if (!Array.isArray(diffIds) || diffIds.length !== image.layers.length || !diffIds.every((d) => typeof d === 'string')) {
    throw new OciImageError(`${what}: rootfs.diff_ids does not list one digest per layer`);
  }
  if (!Array.isArray(history)) throw new OciImageError(`${what}: history is not a list`);
  return { layers: image.layers, config: { run: run as Record<string, unknown>, diffIds: diffIds as string[], history } };
}

/** Whether the index.json entry `d` names `ref`. */
function named(d: Descriptor, ref: string): boolean {
  const name = d.annotations?.[REF_NAME];
  return name !== undefined && taggedRef(name) === taggedRef(ref);
}

async function readJson(layoutDir: string, digest: string): Promise<Record<string, unknown>> {
  const bytes = await readFile(blobPath(layoutDir, digest)).catch((e: NodeJS.ErrnoException) => {
    throw new OciImageError(`the OCI layout ${layoutDir} lacks blob ${digest} (${e.code ?? e.message})`);
  });
  if (`sha256:${createHash('sha256').update(bytes).digest('hex')}` !== digest) {
    throw new OciImageError(`blob ${digest} in ${layoutDir} does not match its digest`);
  }
  return JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
}

async function readIndexJson(layoutDir: string): Promise<Descriptor[]> {
  try {
    return (JSON.parse(await readFile(join(layoutDir, 'index.json'), 'utf8')) as { manifests: Descriptor[] }).manifests;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new OciImageError(`cannot read ${join(layoutDir, 'index.json')}: ${(e as Error).message}`);
  }
}

async function putLayer(layoutDir: string, rootfs: string, mtime: number) {
  const tmp = join(layoutDir, 'blobs', 'sha256', `.tmp-${randomUUID()}`);
  try {
    const layer = await writeLayer(rootfs, tmp, mtime);
    await rename(tmp, blobPath(layoutDir, layer.digest));
    return layer;
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Copies the file `path` into the layout as a blob, hashing it on the way. */
async function putFile(layoutDir: string, path: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const tmp = join(layoutDir, 'blobs', 'sha256', `.tmp-${randomUUID()}`);
  try {
    await pipeline(
      createReadStream(path),
      hashing(hash, (n) => (size += n)),
      createWriteStream(tmp),
    );
    const digest = `sha256:${hash.digest('hex')}`;
    await rename(tmp, blobPath(layoutDir, digest));
    return { digest, size };
  } finally {
    await rm(tmp, { force: true });
  }
}

async function putJson(layoutDir: string, mediaType: string, value: unknown): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const tmp = join(layoutDir, 'blobs', 'sha256', `.tmp-${randomUUID()}`);
  await writeFile(tmp, bytes);
  await rename(tmp, blobPath(layoutDir, digest));
  return { mediaType, digest, size: bytes.length };
}

async function setRef(layoutDir: string, ref: string, index: Descriptor): Promise<void> {
  const others = (await readIndexJson(layoutDir)).filter((d) => !named(d, ref));
  const entry = { ...index, annotations: { [REF_NAME]: ref } };
  const indexFile = join(layoutDir, 'index.json');
  const tmp = `${indexFile}.tmp-${randomUUID()}`;
  await writeFile(tmp, `${JSON.stringify({ schemaVersion: 2, mediaType: MediaType.index, manifests: [...others, entry] }, null, 2)}\n`);
  await rename(tmp, indexFile);
}
