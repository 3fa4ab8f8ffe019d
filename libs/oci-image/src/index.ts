// A build result as an OCI image: a reproducible layer, config, manifest and index in an
// OCI layout, pushed to a registry or loaded into a Docker daemon.
export { OciImageError } from './oci-image-error.js';
export { hostPlatform, platformName, type ImageConfig, type Platform } from './image-config.js';
export {
  MediaType,
  readOciImage,
  writeOciImage,
  type Descriptor,
  type ImageInput,
  type OciImage,
  type PlatformImage,
  type WriteImageOptions,
} from './oci-layout.js';
export { parseRegistryRef, type RegistryRef } from './registry-ref.js';
export { pushImage, type PushedImage, type PushOptions, type RegistryCredentials } from './registry-push.js';
export { imageArchive, loadIntoDocker, writeImageArchive, type DockerLoadOptions } from './docker-load.js';
