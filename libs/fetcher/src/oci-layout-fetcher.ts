import type { Platform } from '@cairn/oci-image';
import { readVerified } from './digest.js';
import type { FetchedImage, Fetcher } from './fetcher.js';
import { unpackImage } from './image-unpacker.js';
import { openOciLayout } from './oci-layout.js';
import { platformOrHost } from './platform.js';

export interface OciLayoutFetcherOptions {
  /** `os/arch[/variant]` to pick from multi-platform images; default the host's (`linux/amd64` on x64, `linux/arm64` on arm64). */
  readonly platform?: string;
}

/**
 * Images from an OCI image layout: a directory, or a tarball of one. `(from NAME)` is
 * looked up by index.json's `org.opencontainers.image.ref.name` annotations: `name`
 * (meaning `name:latest`), `name:tag`, or `name@sha256:...` by the digest of the index
 * or manifest the name has, or of a manifest in that index.
 */
export class OciLayoutFetcher implements Fetcher {
  readonly kind = 'oci';
  private readonly platform: Platform;

  constructor(
    readonly path: string,
    options: OciLayoutFetcherOptions = {},
  ) {
    this.platform = platformOrHost(options.platform);
  }

  async fetch(image: string, rootfs: string, log: (line: string) => void): Promise<FetchedImage> {
    // The layout is opened anew each time: the base-image builder rewrites it in place.
    const layout = await openOciLayout(this.path);
    const top = await layout.resolve(image);
    const bytes = await readVerified(layout.blob(top), top.digest, 'manifest');
    return unpackImage(layout, { digest: top.digest, bytes }, { ref: image, platform: this.platform, rootfs, log });
  }

  /** The index entry's digest (an index stays an index: pinning keeps every platform). */
  async resolve(image: string): Promise<string> {
    const layout = await openOciLayout(this.path);
    const top = await layout.resolve(image);
    await readVerified(layout.blob(top), top.digest, 'manifest');
    return top.digest;
  }
}
