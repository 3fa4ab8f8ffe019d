import { createWriteStream } from 'node:fs';
import { request } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { reproducibleTar } from './archive.js';
import { hostPlatform } from './image-config.js';
import { blobPath, imageBlobs, platformImage, taggedRef, type OciImage } from './oci-layout.js';
import { OciImageError } from './oci-image-error.js';
import { MediaType, REF_NAME, type Platform } from './vocabulary.js';

export interface DockerLoadOptions {
  /** The daemon's socket; default `/var/run/docker.sock`. */
  readonly socketPath?: string;
  /** Which platform of a multi-platform image to load; default the host's. */
  readonly platform?: Platform;
}

const NAME = /^[a-z0-9]([a-z0-9._:/-]*[a-z0-9])?$/;

/** `name:tag`, with `latest` when `ref` has no tag. */
function repoTag(ref: string): string {
  const withTag = taggedRef(ref);
  const name = withTag.slice(0, withTag.lastIndexOf(':'));
  if (ref.includes('@') || !NAME.test(name)) throw new OciImageError(`invalid image name ${JSON.stringify(ref)} to load into Docker`);
  return withTag;
}

/**
 * The image as one tar that both `docker load` and OCI tools read: an OCI layout
 * (index.json naming the image `ref`) plus Docker's manifest.json for one platform.
 * Entries are in a fixed order with fixed times, so the archive is reproducible too.
 */
export function imageArchive(image: OciImage, ref: string, platform: Platform = hostPlatform()): Readable {
  const tag = repoTag(ref);
  const chosen = platformImage(image, platform);
  const hex = (digest: string) => `blobs/sha256/${digest.replace(/^sha256:/, '')}`;
  const entry = { ...image.index, annotations: { 'io.containerd.image.name': tag, [REF_NAME]: tag.slice(tag.lastIndexOf(':') + 1) } };
  const docker = [{ Config: hex(chosen.config.digest), RepoTags: [tag], Layers: chosen.layers.map((l) => hex(l.digest)) }];
  return reproducibleTar(async () => [
    { name: 'oci-layout', content: `${JSON.stringify({ imageLayoutVersion: '1.0.0' })}\n` },
    { name: 'index.json', content: `${JSON.stringify({ schemaVersion: 2, mediaType: MediaType.index, manifests: [entry] })}\n` },
    { name: 'manifest.json', content: `${JSON.stringify(docker)}\n` },
    ...imageBlobs(image).map((blob) => ({ name: hex(blob.digest), file: blobPath(image.layoutDir, blob.digest), size: blob.size })),
  ]);
}

/** `imageArchive` written to `file` (for `docker load -i`, `skopeo copy oci-archive:`/`docker-archive:`). */
export async function writeImageArchive(image: OciImage, ref: string, file: string, platform?: Platform): Promise<void> {
  await pipeline(imageArchive(image, ref, platform), createWriteStream(file));
}

/**
 * Loads one platform of the image into a Docker daemon as `ref` (POST /images/load on its
 * socket). Returns Docker's image ID, which is the config's digest: the same image loaded
 * anywhere has the same ID.
 */
export async function loadIntoDocker(image: OciImage, ref: string, options: DockerLoadOptions = {}): Promise<{ imageId: string }> {
  const socketPath = options.socketPath ?? '/var/run/docker.sock';
  const platform = options.platform ?? hostPlatform();
  const chosen = platformImage(image, platform);
  const archive = imageArchive(image, ref, platform);
  const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ socketPath, method: 'POST', path: '/images/load?quiet=1', headers: { 'content-type': 'application/x-tar' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', (e: NodeJS.ErrnoException) => reject(new OciImageError(`cannot reach the Docker daemon at ${socketPath}: ${e.code ?? e.message}`)));
    archive.on('error', (e) => req.destroy(e));
    archive.pipe(req);
  });
  const failure = reply.body
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      try {
        return (JSON.parse(line) as { error?: string; errorDetail?: { message?: string } }).errorDetail?.message;
      } catch {
        return undefined;
      }
    })
    .find((message) => message !== undefined);
  if (reply.status !== 200 || failure !== undefined) {
    throw new OciImageError(`the Docker daemon at ${socketPath} refused to load ${ref} (${reply.status}): ${failure ?? reply.body.trim().slice(0, 300)}`);
  }
  return { imageId: chosen.config.digest };
}
