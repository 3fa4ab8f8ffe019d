import { ImageNotFoundError, type DatasetStream, type FetchedImage, type Fetcher } from './fetcher.js';
import { parseImageRef } from './image-ref.js';
import { RegistryFetcher } from './registry-fetcher.js';

/**
 * An OCI layout's fetcher that also fetches images named with a registry host
 * (`127.0.0.1:5000/ocaml:4.13`, `registry.example.com/x`) from that registry when the
 * layout has no image of that name, as Docker goes to the host a name carries (plain HTTP
 * on loopback, else HTTPS). So a machine whose base images come from its layout still
 * builds on the images its registry publishes (`cairn up` starts one; the base-image
 * builder pins its images by host and digest), with no other setting. Short names
 * (`busybox`) only ever come from the layout.
 */
export class LayoutWithNamedRegistries implements Fetcher {
  readonly kind: string;
  private readonly registries: RegistryFetcher;

  constructor(
    readonly layout: Fetcher,
    options: { readonly platform?: string } = {},
  ) {
    this.kind = layout.kind;
    // Only names with a host reach it, and a name's host always wins over this default.
    this.registries = new RegistryFetcher({ registry: 'https://registry-1.docker.io', ...options });
  }

  async fetch(image: string, rootfs: string, log: (line: string) => void): Promise<FetchedImage> {
    return (await this.sourceOf(image)).fetch(image, rootfs, log);
  }

  async resolve(image: string): Promise<string> {
    return (await this.sourceOf(image)).resolve(image);
  }

  async datasetStream(image: string, file: string, log: (line: string) => void): Promise<DatasetStream | undefined> {
    return (await this.sourceOf(image)).datasetStream?.(image, file, log);
  }

  private async sourceOf(image: string): Promise<Fetcher> {
    if (parseImageRef(image).host === undefined) return this.layout;
    try {
      await this.layout.resolve(image);
      return this.layout;
    } catch (e) {
      if (e instanceof ImageNotFoundError) return this.registries;
      throw e;
    }
  }
}
