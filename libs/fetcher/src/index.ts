export * from './fetcher.js';
export { FetcherSpecError, parseFetcherSpec } from './fetcher-spec.js';
export { DockerFetcher, type DockerFetcherOptions } from './docker-fetcher.js';
export { OciLayoutFetcher, type OciLayoutFetcherOptions } from './oci-layout-fetcher.js';
export { LayoutWithNamedRegistries } from './named-registries.js';
export { RegistryFetcher, type RegistryFetcherOptions } from './registry-fetcher.js';
export type { RegistryCredentials } from './registry-client.js';
export { applyLayer } from './layers.js';
