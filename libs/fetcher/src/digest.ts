import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { hashing } from '@cairn/oci-image';
import { FetchError } from './fetcher.js';

/** Content digests as OCI writes them: `sha256:` and 64 lowercase hex digits. */
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** Manifests, indexes and configs are read whole; anything bigger is not one. */
const MAX_DOCUMENT_BYTES = 8 * 1024 * 1024;

export function sha256Digest(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * The digest, checked for shape: digests become file names (`blobs/sha256/HEX`) and URL
 * paths, so one from an untrusted document must never reach either unchecked.
 */
export function checkedDigest(digest: unknown, where: string): string {
  if (typeof digest !== 'string' || !DIGEST.test(digest)) {
    throw new FetchError(`${where}: unsupported or malformed digest ${JSON.stringify(digest)} (want sha256:<64 hex>)`);
  }
  return digest;
}

/** The hex part, for layouts that store a blob under `blobs/sha256/HEX`. */
export function digestHex(digest: string): string {
  return digest.slice('sha256:'.length);
}

function mismatch(what: string, expected: string, actual: string): FetchError {
  return new FetchError(`${what} ${expected} is corrupt: its content has digest ${actual}`);
}

/** Reads a manifest, index or config whole, refusing anything too big to be one. */
export async function readDocument(source: AsyncIterable<Uint8Array>, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of source) {
    size += chunk.length;
    if (size > MAX_DOCUMENT_BYTES) throw new FetchError(`${what} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** Reads a small blob whole and checks it against `expected`. */
export async function readVerified(source: AsyncIterable<Uint8Array>, expected: string, what: string): Promise<Buffer> {
  const bytes = await readDocument(source, `${what} ${expected}`);
  verifyBytes(bytes, expected, what);
  return bytes;
}

/** Checks bytes already in hand (a manifest fetched by tag) against a digest. */
export function verifyBytes(bytes: Uint8Array, expected: string, what: string): void {
  const actual = sha256Digest(bytes);
  if (actual !== expected) throw mismatch(what, expected, actual);
}

/**
 * Copies a stream to `file`, hashing it on the way, and fails when the digest is not
 * `expected`. Layers are spooled like this so that nothing unverified is ever unpacked.
 */
export async function copyVerified(source: AsyncIterable<Uint8Array>, file: string, expected: string | undefined, what: string): Promise<void> {
  const hash = createHash('sha256');
  await pipeline(source, hashing(hash), createWriteStream(file));
  const actual = `sha256:${hash.digest('hex')}`;
  if (expected !== undefined && actual !== expected) throw mismatch(what, expected, actual);
}
