import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { digestHex, hashing, readVerified, sha256Digest } from './digest.js';
import { tarDirectory } from './gnu-tar.js';
import { parseImageRef, taggedName } from './image-ref.js';
import { MediaType, parseManifestDocument, REF_NAME, type Descriptor } from './oci-documents.js';
import { openOciLayout } from './oci-layout.js';

export interface OciImageOptions {
  readonly env: readonly (readonly [string, string])[];
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  readonly workingDir?: string;
  readonly user?: string;
  /** Default `amd64`, or the parent's. */
  readonly architecture?: string;
  /** Default `linux`, or the parent's. */
  readonly os?: string;
  /**
   * An image of the same layout to build on: the new image has the parent's layers and
   * config plus one layer made of `rootfsDir`, which then holds only the changes, with
   * deletions as whiteout files (`.wh.NAME`, `.wh..wh..opq`).
   */
  readonly parent?: string;
}

/**
 * Writes an image into the OCI image layout at `layoutDir` (created if needed) and
 * names it `ref` in index.json, replacing any image of that name. The layer is
 * `rootfsDir` as GNU tar archives it (numeric owners, modes, links, devices), gzipped;
 * `rootfsDir`'s own mode and owner become those of the image's `/`.
 * Returns the manifest's descriptor, for `writeOciIndex`.
 *
 * Layouts take one writer at a time: index.json is read, changed and replaced whole.
 */
export async function writeOciImage(
  layoutDir: string,
  ref: string,
  rootfsDir: string,
  options: OciImageOptions,
): Promise<Descriptor> {
  const name = refName(ref);
  await initLayout(layoutDir);
  const parent = options.parent === undefined ? undefined : await readParent(layoutDir, options.parent);
  const layer = await writeLayer(layoutDir, rootfsDir);

  const parentConfig = (parent?.config ?? {}) as Record<string, unknown>;
  const parentRunConfig = (parentConfig.config ?? {}) as Record<string, unknown>;
  const parentRootfs = (parentConfig.rootfs ?? {}) as { diff_ids?: string[] };
  const architecture = options.architecture ?? (parentConfig.architecture as string | undefined) ?? 'amd64';
  const os = options.os ?? (parentConfig.os as string | undefined) ?? 'linux';
  const config = {
    ...parentConfig,
    architecture,
    os,
    config: {
      ...parentRunConfig,
      Env: options.env.map(([k, v]) => `${k}=${v}`),
      ...(options.entrypoint ? { Entrypoint: options.entrypoint } : {}),
      ...(options.cmd ? { Cmd: options.cmd } : {}),
      ...(options.workingDir ? { WorkingDir: options.workingDir } : {}),
      ...(options.user ? { User: options.user } : {}),
    },
    rootfs: { type: 'layers', diff_ids: [...(parentRootfs.diff_ids ?? []), layer.diffId] },
  };
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: await putJson(layoutDir, MediaType.ociConfig, config),
    layers: [...(parent?.layers ?? []), layer.descriptor],
  };
  const descriptor = { ...(await putJson(layoutDir, MediaType.ociManifest, manifest)), platform: { architecture, os } };
  await setRef(layoutDir, name, descriptor);
  return descriptor;
}

/**
 * Names `ref` a multi-platform image made of manifests already in the layout (as
 * `writeOciImage` returned them, each with its platform).
 */
export async function writeOciIndex(layoutDir: string, ref: string, manifests: readonly Descriptor[]): Promise<Descriptor> {
  const name = refName(ref);
  await initLayout(layoutDir);
  const entries = manifests.map(({ mediaType, digest, size, platform }) => ({ mediaType, digest, size, platform }));
  const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries };
  const descriptor = await putJson(layoutDir, MediaType.ociIndex, index);
  await setRef(layoutDir, name, descriptor);
  return descriptor;
}

/** An `oci-archive`: the layout directory as one uncompressed tarball. */
export async function ociLayoutToTar(layoutDir: string, tarFile: string): Promise<void> {
  await pipeline(tarDirectory(layoutDir), createWriteStream(tarFile));
}

function refName(ref: string): string {
  const parsed = parseImageRef(ref);
  if (parsed.digest !== undefined) throw new Error(`cannot name an image by digest: ${ref}`);
  return taggedName(parsed);
}

const blobPath = (layoutDir: string, digest: string) => join(layoutDir, 'blobs', 'sha256', digestHex(digest));

async function initLayout(layoutDir: string): Promise<void> {
  await mkdir(join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

async function readParent(layoutDir: string, ref: string): Promise<{ config: unknown; layers: readonly Descriptor[] }> {
  const layout = await openOciLayout(layoutDir);
  const top = await layout.resolve(ref);
  const manifest = parseManifestDocument(await readVerified(layout.blob(top), top.digest, 'manifest'), `parent ${ref}`);
  if (manifest.kind !== 'manifest') throw new Error(`parent ${ref} is a multi-platform index, not one image`);
  const config = await readVerified(layout.blob(manifest.config), manifest.config.digest, 'config');
  return { config: JSON.parse(config.toString('utf8')), layers: manifest.layers };
}

async function putJson(layoutDir: string, mediaType: string, value: unknown): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = sha256Digest(bytes);
  const tmp = join(layoutDir, 'blobs', 'sha256', `.tmp-${randomUUID()}`);
  await writeFile(tmp, bytes);
  await rename(tmp, blobPath(layoutDir, digest));
  return { mediaType, digest, size: bytes.length };
}

async function writeLayer(layoutDir: string, rootfsDir: string): Promise<{ descriptor: Descriptor; diffId: string }> {
  const tmp = join(layoutDir, 'blobs', 'sha256', `.tmp-${randomUUID()}`);
  const uncompressed = createHash('sha256');
  const compressed = createHash('sha256');
  let size = 0;
  try {
    await pipeline(
      tarDirectory(rootfsDir),
      hashing(uncompressed),
      createGzip(),
      hashing(compressed, (n) => (size += n)),
      createWriteStream(tmp),
    );
    const digest = `sha256:${compressed.digest('hex')}`;
    await rename(tmp, blobPath(layoutDir, digest));
    return { descriptor: { mediaType: MediaType.ociLayerGzip, digest, size }, diffId: `sha256:${uncompressed.digest('hex')}` };
  } finally {
    await rm(tmp, { force: true });
  }
}

async function setRef(layoutDir: string, name: string, descriptor: Descriptor): Promise<void> {
  const indexFile = join(layoutDir, 'index.json');
  let manifests: { annotations?: Record<string, string> }[] = [];
  try {
    manifests = (JSON.parse(await readFile(indexFile, 'utf8')) as { manifests: typeof manifests }).manifests;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const others = manifests.filter((d) => d.annotations?.[REF_NAME] !== name);
  const entry = { ...descriptor, annotations: { ...descriptor.annotations, [REF_NAME]: name } };
  const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...others, entry] };
  const tmp = `${indexFile}.tmp-${randomUUID()}`;
  await writeFile(tmp, `${JSON.stringify(index, null, 2)}\n`);
  await rename(tmp, indexFile);
}
