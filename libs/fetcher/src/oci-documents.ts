import { MediaType, type Descriptor } from '@cairn/oci-image';
import { checkedDigest } from './digest.js';
import { FetchError } from './fetcher.js';

/** What a client accepts when it asks a registry for a manifest; Docker's v2 forms are read as their OCI twins. */
export const MANIFEST_MEDIA_TYPES = [MediaType.index, MediaType.manifest, MediaType.dockerManifestList, MediaType.dockerManifest] as const;

export interface ImageIndex {
  readonly kind: 'index';
  readonly manifests: readonly Descriptor[];
}

export interface ImageManifest {
  readonly kind: 'manifest';
  /** Set on an artifact manifest (ZFS_DATASET_ARTIFACT), which is no image to unpack. */
  readonly artifactType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

type Json = Record<string, unknown>;

function parseJson(bytes: Uint8Array, what: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new FetchError(`${what} is not JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FetchError(`${what} is not a JSON object`);
  }
  return value as Json;
}

function parseDescriptor(value: unknown, what: string): Descriptor {
  const d = (typeof value === 'object' && value !== null ? value : {}) as Json;
  if (typeof d.mediaType !== 'string' || typeof d.size !== 'number') {
    throw new FetchError(`${what}: a descriptor lacks mediaType or size`);
  }
  const p = d.platform as Json | undefined;
  const platform =
    p && typeof p.os === 'string' && typeof p.architecture === 'string'
      ? { os: p.os, architecture: p.architecture, ...(typeof p.variant === 'string' ? { variant: p.variant } : {}) }
      : undefined;
  return {
    mediaType: d.mediaType,
    digest: checkedDigest(d.digest, what),
    size: d.size,
    ...(platform ? { platform } : {}),
    ...artifactTypeOf(d),
    ...(d.annotations ? { annotations: d.annotations as Record<string, string> } : {}),
  };
}

/** `artifactType` of a descriptor or a manifest (OCI 1.1), where it has one. */
function artifactTypeOf(json: Json): { artifactType?: string } {
  return typeof json.artifactType === 'string' ? { artifactType: json.artifactType } : {};
}

function descriptors(value: unknown, what: string): Descriptor[] {
  if (!Array.isArray(value)) throw new FetchError(`${what}: expected a list of descriptors`);
  return value.map((d) => parseDescriptor(d, what));
}

/**
 * Reads a manifest or an index, telling them apart by shape rather than by mediaType,
 * which older manifests leave out and some registries label loosely.
 */
export function parseManifestDocument(bytes: Uint8Array, what: string): ImageIndex | ImageManifest {
  const doc = parseJson(bytes, what);
  if (doc.schemaVersion !== 2) {
    throw new FetchError(`${what}: unsupported manifest schemaVersion ${JSON.stringify(doc.schemaVersion)}`);
  }
  if (Array.isArray(doc.manifests)) return { kind: 'index', manifests: descriptors(doc.manifests, what) };
  if (doc.config !== undefined && Array.isArray(doc.layers)) {
    return { kind: 'manifest', ...artifactTypeOf(doc), config: parseDescriptor(doc.config, what), layers: descriptors(doc.layers, what) };
  }
  throw new FetchError(`${what} is neither an image manifest nor an image index`);
}

/** What of an image config's run settings a build reads: Env, and the WorkingDir and User steps start with. */
export function parseImageConfig(bytes: Uint8Array, what: string): ImageDefaults {
  const config = parseJson(bytes, what).config as Json | undefined;
  const env = config?.Env ?? [];
  if (!Array.isArray(env) || !env.every((e) => typeof e === 'string')) {
    throw new FetchError(`${what}: config.Env is not a list of strings`);
  }
  const text = (key: 'WorkingDir' | 'User'): { workingDir?: string } | { user?: string } => {
    const value = config?.[key];
    if (value === undefined || value === null || value === '') return {};
    if (typeof value !== 'string') throw new FetchError(`${what}: config.${key} is not a string`);
    return key === 'WorkingDir' ? { workingDir: value } : { user: value };
  };
  return { env: splitEnv(env as string[]), ...text('WorkingDir'), ...text('User') };
}

/** The image config's defaults, as a fetch reports them (FetchedImage). */
export interface ImageDefaults {
  readonly env: [string, string][];
  readonly workingDir?: string;
  readonly user?: string;
}

/** `NAME=value` strings as [name, value] pairs. */
export function splitEnv(env: readonly string[]): [string, string][] {
  return env.map((e) => {
    const eq = e.indexOf('=');
    return eq < 0 ? [e, ''] : [e.slice(0, eq), e.slice(eq + 1)];
  });
}
