import { FetchError } from './fetcher.js';

/** `[host[:port]/]repository[:tag][@sha256:...]`, split into its parts. */
export interface ImageRef {
  /** Registry host (and port) when the reference names one. */
  readonly host?: string;
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d+)?$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/**
 * Parses an image reference the way Docker does: the first path component is a
 * registry host only if it has a dot or a port, or is `localhost`.
 */
export function parseImageRef(text: string): ImageRef {
  const bad = (why: string) => new FetchError(`invalid image reference ${JSON.stringify(text)}: ${why}`);
  const at = text.indexOf('@');
  const named = at < 0 ? text : text.slice(0, at);
  const digest = at < 0 ? undefined : text.slice(at + 1);
  if (digest !== undefined && !DIGEST.test(digest)) throw bad('the digest must be sha256:<64 lowercase hex>');

  const colon = named.lastIndexOf(':');
  const hasTag = colon > named.lastIndexOf('/');
  const path = hasTag ? named.slice(0, colon) : named;
  const tag = hasTag ? named.slice(colon + 1) : undefined;
  if (tag !== undefined && !TAG.test(tag)) throw bad(`bad tag ${JSON.stringify(tag)}`);

  const slash = path.indexOf('/');
  const first = slash < 0 ? '' : path.slice(0, slash);
  const isHost = first.includes('.') || first.includes(':') || first === 'localhost';
  const host = isHost ? first : undefined;
  const repository = isHost ? path.slice(slash + 1) : path;
  if (host !== undefined && !HOST.test(host)) throw bad(`bad registry host ${JSON.stringify(host)}`);
  if (!repository.split('/').every((c) => COMPONENT.test(c))) {
    throw bad('the name must be lowercase path components of letters, digits and . _ -');
  }
  return { host, repository, tag, digest };
}

/** The name without tag or digest: `host/repository` or `repository`. */
export function imageName(ref: ImageRef): string {
  return ref.host === undefined ? ref.repository : `${ref.host}/${ref.repository}`;
}

/** `name:tag`, the tag defaulting to `latest`: the form layouts are annotated with. */
export function taggedName(ref: ImageRef): string {
  return `${imageName(ref)}:${ref.tag ?? 'latest'}`;
}
