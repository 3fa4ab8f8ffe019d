import { hostPlatform, type Descriptor, type Platform } from '@cairn/oci-image';
import { FetchError } from './fetcher.js';
import type { ImageIndex } from './oci-documents.js';

// Names that uname and package managers use for the architectures OCI spells otherwise.
const ARCH_ALIASES: Readonly<Record<string, string>> = { x86_64: 'amd64', aarch64: 'arm64' };

/**
 * The platform a fetcher picks from multi-platform images: `text` when given, otherwise
 * the host's, the one the OCI writer labels the images it makes with (oci-image's
 * hostPlatform), so that an arm64 machine fetches and builds arm64 images.
 */
export function platformOrHost(text: string | undefined): Platform {
  return text ? parsePlatform(text) : hostPlatform();
}

/** `os/architecture[/variant]`, as in `linux/amd64` or `linux/arm/v7`. */
export function parsePlatform(text: string): Platform {
  const [os, arch, variant, ...rest] = text.split('/');
  if (!os || !arch || rest.length > 0 || variant === '') {
    throw new FetchError(`invalid platform ${JSON.stringify(text)}: expected os/architecture[/variant]`);
  }
  const architecture = ARCH_ALIASES[arch] ?? arch;
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((s) => s !== undefined).join('/');
}

/**
 * The index entry for `platform` among the entries of `artifactType` (none: the images).
 * Without a wanted variant any variant matches, as Docker does, so that `linux/arm64`
 * finds an entry marked `linux/arm64/v8`.
 */
export function findPlatform(index: ImageIndex, platform: Platform, artifactType?: string): Descriptor | undefined {
  return index.manifests.find(
    (d) =>
      d.artifactType === artifactType &&
      d.platform?.os === platform.os &&
      d.platform.architecture === platform.architecture &&
      (platform.variant === undefined || d.platform.variant === platform.variant),
  );
}

/** The image entry for `platform`; a FetchError names the platforms the index offers otherwise. */
export function selectPlatform(index: ImageIndex, platform: Platform, what: string): Descriptor {
  const found = findPlatform(index, platform);
  if (found) return found;
  const offered = index.manifests.flatMap((d) => (d.platform && d.artifactType === undefined ? [formatPlatform(d.platform)] : []));
  throw new FetchError(`${what} has no image for ${formatPlatform(platform)}; it offers: ${offered.join(', ') || 'no platforms'}`);
}
