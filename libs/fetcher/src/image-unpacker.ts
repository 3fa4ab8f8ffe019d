import type { Descriptor, Platform } from '@cairn/oci-image';
import { readVerified, verifyBytes } from './digest.js';
import { FetchError, type FetchedImage } from './fetcher.js';
import { applyLayer } from './layers.js';
import { parseImageConfig, parseManifestDocument, type ImageDefaults } from './oci-documents.js';
import { formatPlatform, selectPlatform } from './platform.js';

/**
 * Where an image's content comes from: a registry or an OCI layout. Sources hand out
 * bytes as stored; `unpackImage` checks every digest itself.
 */
export interface ImageSource {
  /** For messages: `OCI layout /srv/images`, `registry http://127.0.0.1:5000`. */
  readonly where: string;
  manifest(digest: string): Promise<Uint8Array>;
  blob(descriptor: Descriptor): AsyncIterable<Uint8Array>;
}

// An index may point at further indexes; real images nest one level at most.
const MAX_INDEX_DEPTH = 4;

/**
 * Unpacks the image whose top manifest or index is `top` into `rootfs`: picks
 * `platform` from indexes, reads the config's Env, applies the layers in order, and
 * logs the manifest digest that `ref` resolved to.
 */
export async function unpackImage(
  source: ImageSource,
  top: { readonly digest: string; readonly bytes: Uint8Array },
  options: { readonly ref: string; readonly platform: Platform; readonly rootfs: string; readonly log: (line: string) => void },
): Promise<FetchedImage> {
  let { digest, bytes } = top;
  const indexes: string[] = [];
  for (;;) {
    verifyBytes(bytes, digest, 'manifest');
    const doc = parseManifestDocument(bytes, `manifest ${digest} in ${source.where}`);
    if (doc.kind === 'manifest') {
      if (doc.artifactType !== undefined) throw new FetchError(`${options.ref} names an artifact (${doc.artifactType}), not an image`);
      const via = indexes.length ? ` (${formatPlatform(options.platform)} in index ${indexes[0]})` : '';
      options.log(`resolved ${options.ref} to ${digest}${via}`);
      return { ...(await applyImage(source, doc.config, doc.layers, options)), digest };
    }
    if (indexes.push(digest) > MAX_INDEX_DEPTH) throw new FetchError(`${options.ref}: image indexes nest too deeply`);
    digest = selectPlatform(doc, options.platform, `image index ${digest} of ${options.ref}`).digest;
    bytes = await source.manifest(digest);
  }
}

async function applyImage(
  source: ImageSource,
  config: Descriptor,
  layers: readonly Descriptor[],
  options: { readonly rootfs: string; readonly log: (line: string) => void },
): Promise<ImageDefaults> {
  const defaults = parseImageConfig(await readVerified(source.blob(config), config.digest, 'config'), `config ${config.digest}`);
  for (const [i, layer] of layers.entries()) {
    options.log(`applying layer ${i + 1}/${layers.length} ${layer.digest} (${layer.size} bytes)`);
    await applyLayer(options.rootfs, source.blob(layer), { digest: layer.digest });
  }
  return defaults;
}
