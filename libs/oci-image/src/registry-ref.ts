import { OciImageError } from './oci-image-error.js';

/** Where a push goes: `host[:port]/repository[:tag]`. */
export interface RegistryRef {
  /** `http://127.0.0.1:5000`: plain HTTP for loopback hosts (as Docker does), HTTPS otherwise. */
  readonly base: string;
  readonly host: string;
  readonly repository: string;
  /** Default `latest`. */
  readonly tag: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d+)?$/;
const LOOPBACK = /^(?:localhost|127(?:\.\d+){3}|\[::1\])(?::\d+)?$/;

/**
 * Parses a push target. Unlike a pull, it must name its registry (a first component with
 * a dot or a port, or `localhost`), and it takes a tag, not a digest: the digest is the
 * image's own. `plainHttp` forces http:// for a registry that is not on loopback.
 */
export function parseRegistryRef(text: string, options: { readonly plainHttp?: boolean } = {}): RegistryRef {
  const bad = (why: string) => new OciImageError(`invalid push target ${JSON.stringify(text)}: ${why}`);
  if (text.includes('@')) throw bad('a push names a tag, not a digest');
  const slash = text.indexOf('/');
  const host = slash < 0 ? '' : text.slice(0, slash);
  if (!(host.includes('.') || host.includes(':') || host === 'localhost')) {
    throw bad('it must start with the registry, as in 127.0.0.1:5000/NAME:TAG or registry.example.org/NAME:TAG');
  }
  if (!HOST.test(host)) throw bad(`bad registry host ${JSON.stringify(host)}`);
  const rest = text.slice(slash + 1);
  const colon = rest.lastIndexOf(':');
  const hasTag = colon > rest.lastIndexOf('/');
  const repository = hasTag ? rest.slice(0, colon) : rest;
  const tag = hasTag ? rest.slice(colon + 1) : 'latest';
  if (!TAG.test(tag)) throw bad(`bad tag ${JSON.stringify(tag)}`);
  if (!repository.split('/').every((c) => COMPONENT.test(c))) {
    throw bad('the name must be lowercase path components of letters, digits and . _ -');
  }
  const scheme = options.plainHttp || LOOPBACK.test(host) ? 'http' : 'https';
  return { base: `${scheme}://${host}`, host, repository, tag };
}
