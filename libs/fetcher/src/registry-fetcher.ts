import type { Platform } from '@cairn/oci-image';
import { readDocument, sha256Digest } from './digest.js';
import { fetchDatasetStream } from './dataset-stream.js';
import { FetchError, type DatasetStream, type FetchedImage, type Fetcher } from './fetcher.js';
import { parseImageRef } from './image-ref.js';
import { unpackImage, type ImageSource } from './image-unpacker.js';
import { MANIFEST_MEDIA_TYPES } from './oci-documents.js';
import { platformOrHost } from './platform.js';
import { bodyOf, RegistryClient, type RegistryCredentials } from './registry-client.js';

export interface RegistryFetcherOptions {
  /** Where names without a registry host go: `http://127.0.0.1:5000`, `https://registry-1.docker.io`. */
  readonly registry: string;
  /** `os/arch[/variant]` to pick from multi-platform images; default the host's (`linux/amd64` on x64, `linux/arm64` on arm64). */
  readonly platform?: string;
  /** Sent to a registry's token service when it asks for a token. */
  readonly credentials?: RegistryCredentials;
}

const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
// Docker's rule: registries on the loopback network may speak plain HTTP.
const LOOPBACK = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/;

/**
 * Images from a registry through the OCI distribution API: the tag is resolved to a
 * manifest digest (logged), an index is narrowed to the platform, and every blob is
 * checked against its digest while it streams in.
 */
export class RegistryFetcher implements Fetcher {
  readonly kind = 'registry';
  /** Where names without a registry host go. */
  readonly registry: URL;
  private readonly platform: Platform;

  constructor(private readonly options: RegistryFetcherOptions) {
    this.registry = new URL(options.registry);
    if (this.registry.protocol !== 'http:' && this.registry.protocol !== 'https:') {
      throw new FetchError(`registry URL must be http:// or https://, not ${options.registry}`);
    }
    this.platform = platformOrHost(options.platform);
  }

  async fetch(image: string, rootfs: string, log: (line: string) => void): Promise<FetchedImage> {
    const { source, top } = await this.sourceOf(image);
    return unpackImage(source, top, { ref: image, platform: this.platform, rootfs, log });
  }

  async datasetStream(image: string, file: string, log: (line: string) => void): Promise<DatasetStream | undefined> {
    const { source, top } = await this.sourceOf(image);
    return fetchDatasetStream(source, top, { ref: image, platform: this.platform, file, log });
  }

  /** The image's top manifest or index, and the registry's blobs and manifests as an ImageSource. */
  private async sourceOf(image: string): Promise<{ source: ImageSource; top: { digest: string; bytes: Uint8Array } }> {
    const { top, digest, manifest, client, repository, where } = await this.topManifest(image);
    const source: ImageSource = {
      where,
      manifest: async (d) => (await manifest(d)).bytes,
      async *blob(descriptor) {
        const response = await client.get(repository, `blobs/${descriptor.digest}`);
        if (!response.ok) throw await refusal(response, `${repository} blob ${descriptor.digest}`, where);
        yield* bodyOf(response);
      },
    };
    return { source, top: { digest, bytes: top.bytes } };
  }

  /** The top manifest's (or index's) digest, checked against the bytes the registry sent. */
  async resolve(image: string): Promise<string> {
    return (await this.topManifest(image)).digest;
  }

  /**
   * The manifest or index `image` names, by digest when pinned (a tag beside the digest
   * is ignored, as Docker does), else by tag; its bytes must hash to the digest.
   */
  private async topManifest(image: string) {
    const ref = parseImageRef(image);
    const base = this.baseFor(ref.host);
    const hub = DOCKER_HUB_HOSTS.has(new URL(base).host);
    const repository = hub && !ref.repository.includes('/') ? `library/${ref.repository}` : ref.repository;
    const client = new RegistryClient(base, this.options.credentials);
    const where = `registry ${base}`;

    const manifest = async (reference: string) => {
      const response = await client.get(repository, `manifests/${reference}`, MANIFEST_MEDIA_TYPES.join(', '));
      if (!response.ok) throw await refusal(response, `${repository}:${reference}`, where);
      return { bytes: await readDocument(bodyOf(response), `manifest ${reference}`), headers: response.headers };
    };
    const top = await manifest(ref.digest ?? ref.tag ?? 'latest');
    const actual = sha256Digest(top.bytes);
    if (ref.digest !== undefined && actual !== ref.digest) {
      throw new FetchError(`${where} sent a manifest for ${image} whose digest is ${actual}, not the pinned ${ref.digest}`);
    }
    const claimed = top.headers.get('docker-content-digest');
    if (claimed && claimed !== actual) {
      throw new FetchError(`${where} says ${image} is ${claimed}, but the manifest it sent has digest ${actual}`);
    }
    return { top, digest: actual, manifest, client, repository, where };
  }

  /** The configured registry for names without a host (or naming it), else that host. */
  private baseFor(host: string | undefined): string {
    if (host === undefined || host === this.registry.host) return this.registry.origin;
    if (host === 'docker.io') return 'https://registry-1.docker.io';
    return `${LOOPBACK.test(host) ? 'http' : 'https'}://${host}`;
  }
}

async function refusal(response: Response, what: string, where: string): Promise<FetchError> {
  await response.body?.cancel();
  if (response.status === 404) return new FetchError(`${where} has no ${what}`);
  if (response.status === 401 || response.status === 403) {
    return new FetchError(`${where} denied access to ${what} (${response.status}); are credentials needed?`);
  }
  return new FetchError(`${where} answered ${response.status} ${response.statusText} for ${what}`);
}
