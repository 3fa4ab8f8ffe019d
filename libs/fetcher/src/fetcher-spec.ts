import { DockerFetcher } from './docker-fetcher.js';
import type { Fetcher } from './fetcher.js';
import { LayoutWithNamedRegistries } from './named-registries.js';
import { OciLayoutFetcher } from './oci-layout-fetcher.js';
import { RegistryFetcher } from './registry-fetcher.js';

/** A `--fetcher` value that names no driver Cairn has. */
export class FetcherSpecError extends Error {
  override readonly name = 'FetcherSpecError';
}

const CHOICES = [
  'oci:/path/to/layout (a directory or an OCI layout .tar)',
  'registry:http://host:port or registry:https://host',
  'docker (the daemon at /var/run/docker.sock)',
  'docker:/path/to/docker.sock',
];

function invalid(text: string, why: string): FetcherSpecError {
  return new FetcherSpecError(`invalid fetcher ${JSON.stringify(text)}: ${why}; valid choices:\n  ${CHOICES.join('\n  ')}`);
}

/**
 * The fetcher a `--fetcher` value names: `oci:PATH` (and, for names with a registry host
 * the layout lacks, that registry), `registry:URL`, `docker` or `docker:SOCKET`. `platform` picks from multi-platform images (default the host's, as the OCI writer labels its images).
 */
export function parseFetcherSpec(text: string, options: { readonly platform?: string } = {}): Fetcher {
  const colon = text.indexOf(':');
  const kind = colon < 0 ? text : text.slice(0, colon);
  const arg = colon < 0 ? undefined : text.slice(colon + 1);
  switch (kind) {
    case 'oci':
      if (!arg) throw invalid(text, 'oci needs the path of a layout');
      return new LayoutWithNamedRegistries(new OciLayoutFetcher(arg, options), options);
    case 'registry': {
      const url = arg && URL.canParse(arg) ? new URL(arg) : undefined;
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
        throw invalid(text, 'registry needs an http:// or https:// URL');
      }
      return new RegistryFetcher({ registry: url.href, ...options });
    }
    case 'docker':
      if (arg !== undefined && !arg.startsWith('/')) throw invalid(text, 'docker takes the absolute path of the daemon socket');
      return new DockerFetcher({ socketPath: arg });
    default:
      throw invalid(text, `unknown kind ${JSON.stringify(kind)}`);
  }
}
