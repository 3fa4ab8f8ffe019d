import { MediaType, ZFS_DATASET_ARTIFACT, type Platform } from '@cairn/oci-image';
import { copyVerified, verifyBytes } from './digest.js';
import { FetchError, type DatasetStream } from './fetcher.js';
import type { ImageSource } from './image-unpacker.js';
import { parseManifestDocument } from './oci-documents.js';
import { findPlatform, formatPlatform } from './platform.js';

/**
 * The ZFS dataset stream that the image whose top manifest or index is `top` offers for
 * `platform` (libs/oci-image addDatasetStream), copied to `file` and checked against its
 * digest on the way; undefined when it offers none, and then the image is unpacked from
 * its layers as on any other store.
 */
export async function fetchDatasetStream(
  source: ImageSource,
  top: { readonly digest: string; readonly bytes: Uint8Array },
  options: { readonly ref: string; readonly platform: Platform; readonly file: string; readonly log: (line: string) => void },
): Promise<DatasetStream | undefined> {
  verifyBytes(top.bytes, top.digest, 'manifest');
  const index = parseManifestDocument(top.bytes, `manifest ${top.digest} in ${source.where}`);
  if (index.kind !== 'index') return undefined;
  const entry = findPlatform(index, options.platform, ZFS_DATASET_ARTIFACT);
  if (!entry) return undefined;
  const what = `the ZFS dataset artifact ${entry.digest} of ${options.ref} in ${source.where}`;
  const bytes = await source.manifest(entry.digest);
  verifyBytes(bytes, entry.digest, 'manifest');
  const manifest = parseManifestDocument(bytes, what);
  const stream = manifest.kind === 'manifest' && manifest.layers.length === 1 ? manifest.layers[0]! : undefined;
  if (!stream || stream.mediaType !== MediaType.zfsStream) throw new FetchError(`${what} does not hold exactly one ${MediaType.zfsStream} blob`);
  options.log(
    `resolved ${options.ref} to ${top.digest}: a ZFS dataset stream for ${formatPlatform(options.platform)}, ${stream.digest} (${stream.size} bytes)`,
  );
  await copyVerified(source.blob(stream), options.file, stream.digest, 'ZFS dataset stream');
  return { digest: entry.digest, size: stream.size };
}
