/**
 * Build contexts and artifacts: content-addressed blobs in a JetStream stream of their
 * own (streams.ts `blobStores`), each written once by its owner, a client for its
 * contexts and a worker for the artifacts of its jobs. The layout puts the owner where
 * NATS permissions can pin it:
 *
 *   cairn.v1.<store>.<owner>.c.<upload>  the chunks of one upload, in order
 *   cairn.v1.<store>.<owner>.m.<hex>     the meta of blob <hex>: its size, chunk count and upload
 *
 * so a client or worker can write under its own name only (nats-auth.ts): nobody can
 * replace, pre-empt or corrupt another's blob. The streams refuse purge, delete and
 * rollup headers, so nothing once written goes away but by age; and a reader takes the
 * first meta message of a name and the first `chunks` messages of its upload, so a
 * second write under a name, or chunks added to an upload later, change nothing. Every
 * reader checks the bytes against the name's SHA-256 besides.
 *
 * Everything is read with direct gets (no consumers to create or leak) and written with
 * acknowledged publishes: a writer needs publish rights on its own subjects and nothing
 * of JetStream's API.
 */
import { createHash } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { Empty, nuid, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { blobStores, type BlobStoreName } from './streams.js';
import { subjects } from './subjects.js';

const CHUNK = 128 * 1024;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface BlobRef {
  readonly store: BlobStoreName;
  /** The client or worker that wrote it. */
  readonly owner: string;
  /** SHA-256 of the bytes, 64 hex digits. */
  readonly sha256: string;
}

export interface BlobMeta {
  readonly size: number;
  readonly chunks: number;
  readonly upload: string;
}

/** Missing, too large, or bytes that are not what the name says. */
export class BlobError extends Error {
  override readonly name = 'BlobError';
}

const describe = (ref: BlobRef) =>
  `${ref.store === 'contexts' ? 'context' : 'artifact'} sha256:${ref.sha256} of ${ref.owner} in stream ${blobStores[ref.store].stream}`;
const metaSubject = (ref: BlobRef) => `${subjects.blobsOf(ref.store, ref.owner)}.m.${ref.sha256}`;
const chunkSubject = (store: BlobStoreName, owner: string, upload: string) => `${subjects.blobsOf(store, owner)}.c.${upload}`;

function checkRef(ref: BlobRef): void {
  if (!SHA256_HEX.test(ref.sha256)) throw new BlobError(`"${ref.sha256}" is not a SHA-256 (64 lower-case hex digits)`);
}

/** A direct get's message, or undefined for "no such message". */
async function directGet(nc: NatsConnection, subject: string, body: Uint8Array | string, store: BlobStoreName): Promise<Msg | undefined> {
  let reply: Msg;
  try {
    reply = await nc.request(subject, body, { timeout: 10_000 });
  } catch (e) {
    if (/no responders|503/i.test(String(e))) throw new BlobError(`stream ${blobStores[store].stream} does not exist (the services create it at start)`);
    throw e;
  }
  const code = reply.headers?.code ?? 0;
  if (code === 404) return undefined;
  if (code >= 400) throw new BlobError(`stream ${blobStores[store].stream}: ${code} ${reply.headers?.description ?? ''}`.trim());
  return reply;
}

/** The first message at or after `seq` on `subject`. */
function firstFrom(nc: NatsConnection, store: BlobStoreName, subject: string, seq: number): Promise<Msg | undefined> {
  return directGet(nc, `$JS.API.DIRECT.GET.${blobStores[store].stream}`, JSON.stringify({ seq, next_by_subj: subject }), store);
}

/**
 * Whether the owner has stored this blob: the one read the owner itself may make (the
 * newest message on its own meta subject), for a writer deciding whether to upload.
 */
export async function blobExists(nc: NatsConnection, ref: BlobRef): Promise<boolean> {
  checkRef(ref);
  const reply = await directGet(nc, `$JS.API.DIRECT.GET.${blobStores[ref.store].stream}.${metaSubject(ref)}`, Empty, ref.store);
  return reply !== undefined && reply.data.length > 0;
}

/** The blob's meta as first written, or undefined when it was never stored. */
export async function blobInfo(nc: NatsConnection, ref: BlobRef): Promise<BlobMeta | undefined> {
  checkRef(ref);
  const reply = await firstFrom(nc, ref.store, metaSubject(ref), 1);
  if (reply === undefined) return undefined;
  let meta: unknown;
  try {
    meta = JSON.parse(new TextDecoder().decode(reply.data));
  } catch {
    throw new BlobError(`${describe(ref)}: its meta message is not JSON`);
  }
  const { size, chunks, upload } = (meta ?? {}) as Record<string, unknown>;
  if (
    !Number.isSafeInteger(size) ||
    (size as number) < 0 ||
    !Number.isSafeInteger(chunks) ||
    (chunks as number) < 0 ||
    typeof upload !== 'string' ||
    !/^[A-Za-z0-9]+$/.test(upload)
  ) {
    throw new BlobError(`${describe(ref)}: its meta message is malformed`);
  }
  return { size: size as number, chunks: chunks as number, upload };
}

/**
 * The blob's bytes, checked as they come: more than `maxBytes` or than its meta says,
 * or bytes whose SHA-256 is not the name's, end the iteration with a BlobError.
 * Undefined when it was never stored.
 */
export async function readBlob(
  nc: NatsConnection,
  ref: BlobRef,
  maxBytes = Number.MAX_SAFE_INTEGER,
): Promise<{ meta: BlobMeta; bytes: AsyncIterable<Uint8Array> } | undefined> {
  const meta = await blobInfo(nc, ref);
  if (meta === undefined) return undefined;
  if (meta.size > maxBytes) throw new BlobError(`${describe(ref)}: ${meta.size} bytes, more than the limit of ${maxBytes}`);
  const subject = chunkSubject(ref.store, ref.owner, meta.upload);
  async function* bytes(): AsyncGenerator<Uint8Array> {
    const hash = createHash('sha256');
    let size = 0;
    let seq = 1;
    for (let i = 0; i < meta!.chunks; i++) {
      const chunk = await firstFrom(nc, ref.store, subject, seq);
      if (chunk === undefined) throw new BlobError(`${describe(ref)}: chunk ${i + 1} of ${meta!.chunks} is missing`);
      size += chunk.data.length;
      if (size > meta!.size) throw new BlobError(`${describe(ref)}: more bytes than the ${meta!.size} its meta says`);
      hash.update(chunk.data);
      yield chunk.data;
      seq = Number(chunk.headers?.get('Nats-Sequence')) + 1;
      if (!Number.isSafeInteger(seq)) throw new BlobError(`${describe(ref)}: the stream's reply has no sequence`);
    }
    const actual = hash.digest('hex');
    if (size !== meta!.size || actual !== ref.sha256)
      throw new BlobError(`${describe(ref)}: its content has digest sha256:${actual} (${size} bytes), not its name: refused`);
  }
  return { meta, bytes: bytes() };
}

/**
 * Stores `source` as `owner`'s blob under its SHA-256 unless the owner has it already.
 * The bytes are hashed as they are sent; `expectedSha256`, when given, must match, and
 * lets a blob already there be found before anything is sent.
 */
export async function putBlob(
  nc: NatsConnection,
  store: BlobStoreName,
  owner: string,
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  expectedSha256?: string,
): Promise<{ sha256: string; bytes: number; uploaded: boolean }> {
  if (expectedSha256 !== undefined && (await blobExists(nc, { store, owner, sha256: expectedSha256 })))
    return { sha256: expectedSha256, bytes: 0, uploaded: false };
  const js = jetstream(nc);
  // The chunks go under an upload ID: the name (the hash) is known only at the end.
  const upload = nuid.next();
  const subject = chunkSubject(store, owner, upload);
  const hash = createHash('sha256');
  let size = 0;
  let chunks = 0;
  let pending = Buffer.alloc(0);
  const send = async (bytes: Uint8Array) => {
    await js.publish(subject, bytes).catch((e: unknown) => {
      if (/no responders|503/i.test(String(e))) throw new BlobError(`stream ${blobStores[store].stream} does not exist (the services create it at start)`);
      throw e;
    });
    chunks++;
  };
  for await (const piece of source) {
    hash.update(piece);
    size += piece.length;
    pending = Buffer.concat([pending, piece]);
    while (pending.length >= CHUNK) {
      await send(pending.subarray(0, CHUNK));
      pending = pending.subarray(CHUNK);
    }
  }
  if (pending.length > 0) await send(pending);
  const sha256 = hash.digest('hex');
  if (expectedSha256 !== undefined && expectedSha256 !== sha256) throw new BlobError(`the bytes sent hash to sha256:${sha256}, not sha256:${expectedSha256}`);
  const meta: BlobMeta = { size, chunks, upload };
  try {
    // Only the owner writes here; the expectation spares a second meta when two of its uploads race.
    await js.publish(metaSubject({ store, owner, sha256 }), JSON.stringify(meta), { expect: { lastSubjectSequence: 0 } });
  } catch (e) {
    // The same bytes were stored first by another upload: that one stands (these chunks age out unread).
    if (String(e).includes('wrong last sequence')) return { sha256, bytes: size, uploaded: false };
    throw e;
  }
  return { sha256, bytes: size, uploaded: true };
}
