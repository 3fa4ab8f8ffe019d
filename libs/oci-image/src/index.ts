// A build result as an OCI image: a reproducible layer, config, manifest and index in an
// OCI layout, pushed to a registry or loaded into a Docker daemon. Also the OCI terms
// (media types, descriptors, platforms) that @cairn/fetcher reads images with.
export { OciImageError } from './oci-image-error.js';
export { hashing } from './hashing.js';
export { MediaType, REF_NAME, ZFS_DATASET_ARTIFACT, type Descriptor, type Platform } from './vocabulary.js';
export { checkImageConfig, hostPlatform, platformName, type ImageConfig } from './image-config.js';
export { addDatasetStream, readOciImage, writeOciImage, type ImageInput, type OciImage, type PlatformImage, type WriteImageOptions } from './oci-layout.js';
export { ociArchive, writeOciArchive } from './archive.js';
export { parseRegistryRef, type RegistryRef } from './registry-ref.js';
export { pushImage, type PushedImage, type PushOptions, type RegistryCredentials } from './registry-push.js';
export { imageArchive, loadIntoDocker, writeImageArchive, type DockerLoadOptions } from './docker-load.js';
