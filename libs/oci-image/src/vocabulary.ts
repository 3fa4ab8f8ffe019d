/**
 * The OCI image-spec terms that both sides of Cairn use: this library writing images and
 * @cairn/fetcher reading them. Docker's v2 manifest types are here because registries
 * and `docker save` still hand them out; the fetcher reads them as their OCI twins.
 */
export const MediaType = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

/** The index.json annotation that names an image in an OCI layout. */
export const REF_NAME = 'org.opencontainers.image.ref.name';

export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: Platform;
  readonly annotations?: Readonly<Record<string, string>>;
}
