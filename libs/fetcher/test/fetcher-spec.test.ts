import { describe, expect, it } from 'vitest';
import { DockerFetcher, FetcherSpecError, LayoutWithNamedRegistries, OciLayoutFetcher, parseFetcherSpec, RegistryFetcher } from '@cairn/fetcher';

describe('parseFetcherSpec', () => {
  it('makes the driver each value names, reading images from where it says', () => {
    const oci = parseFetcherSpec('oci:/srv/images.tar');
    expect(oci).toBeInstanceOf(LayoutWithNamedRegistries);
    const layout = (oci as LayoutWithNamedRegistries).layout;
    expect(layout).toBeInstanceOf(OciLayoutFetcher);
    expect([oci.kind, (layout as OciLayoutFetcher).path]).toEqual(['oci', '/srv/images.tar']);
    const registry = parseFetcherSpec('registry:http://127.0.0.1:5000');
    expect(registry).toBeInstanceOf(RegistryFetcher);
    expect((registry as RegistryFetcher).registry.origin).toBe('http://127.0.0.1:5000');
    expect((parseFetcherSpec('docker') as DockerFetcher).socketPath).toBe('/var/run/docker.sock');
    expect((parseFetcherSpec('docker:/run/docker.sock') as DockerFetcher).socketPath).toBe('/run/docker.sock');
  });

  it.each([
    ['podman', /unknown kind "podman"/],
    ['oci:', /oci needs the path of a layout/],
    ['registry:127.0.0.1:5000', /registry needs an http:\/\/ or https:\/\/ URL/],
    ['registry:ftp://host', /registry needs an http:\/\/ or https:\/\/ URL/],
    ['docker:run/docker.sock', /absolute path/],
  ])('rejects %s and lists the valid choices', (text, why) => {
    let error: unknown;
    try {
      parseFetcherSpec(text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FetcherSpecError);
    const message = (error as Error).message;
    expect(message).toMatch(why);
    for (const choice of ['oci:/path/to/layout', 'registry:http://host:port', 'docker:/path/to/docker.sock']) {
      expect(message).toContain(choice);
    }
  });
});
