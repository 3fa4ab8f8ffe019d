import type { Platform } from '@cairn/oci-image';
import { readVerified } from './digest.js';
import { fetchDatasetStream } from './dataset-stream.js';
import type { DatasetStream, FetchedImage, Fetcher } from './fetcher.js';
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
    const { layout, top } = await this.open(image);
    return unpackImage(layout, top, { ref: image, platform: this.platform, rootfs, log });
  }

  async datasetStream(image: string, file: string, log: (line: string) => void): Promise<DatasetStream | undefined> {
    const { layout, top } = await this.open(image);
    return fetchDatasetStream(layout, top, { ref: image, platform: this.platform, file, log });
  }

  private async open(image: string) {
    // The layout is opened anew each time: the base-image builder rewrites it in place.
    const layout = await openOciLayout(this.path);
    const top = await layout.resolve(image);
    const bytes = await readVerified(layout.blob(top), top.digest, 'manifest');
    return { layout, top: { digest: top.digest, bytes } };
  }

  /** The index entry's digest (an index stays an index: pinning keeps every platform). */
  async resolve(image: string): Promise<string> {
    return (await this.open(image)).top.digest;
  }
}
