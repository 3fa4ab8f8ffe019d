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
  /** The config of an artifact manifest that has none (OCI image-spec 1.1): the two bytes `{}`. */
  empty: 'application/vnd.oci.empty.v1+json',
  /** The one blob of a ZFS dataset artifact: the full `zfs send` stream of one snapshot. */
  zfsStream: 'application/vnd.cairn.zfs.stream.v1',
} as const;

/**
 * The artifactType of a ZFS dataset stream in an image's index (docs/zfs.md): the image's
 * root filesystem laid out as a store result, which a ZFS store receives instead of
 * unpacking layers. Fetchers that unpack images pass such entries by.
 */
export const ZFS_DATASET_ARTIFACT = 'application/vnd.cairn.zfs.dataset.v1';

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
  /** On an index entry or an artifact manifest: what kind of artifact it is (ZFS_DATASET_ARTIFACT). */
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}
