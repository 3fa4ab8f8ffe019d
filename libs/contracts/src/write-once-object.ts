/**
 * Uploading into a JetStream object store without the rights the object-store client
 * needs (reading any message by sequence, purging): a client may only add. The object
 * is written in the object store's own layout (chunks on `$O.<bucket>.C.<nuid>`, then
 * the meta message on `$O.<bucket>.M.<name>`), and the meta message is published with
 * "expected last sequence for this subject = 0", so a name is written once: nobody can
 * replace a stored context with other bytes under the same digest name.
 */
import { createHash } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { Empty, nuid, type NatsConnection } from '@nats-io/transport-node';

const CHUNK = 128 * 1024;
const base64Url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
const metaSubject = (bucket: string, name: string) => `$O.${bucket}.M.${base64Url(Buffer.from(name))}`;

/** Whether `name` is stored in `bucket` (a direct get of its meta message). */
export async function objectExists(nc: NatsConnection, bucket: string, name: string): Promise<boolean> {
  const reply = await nc.request(`$JS.API.DIRECT.GET.OBJ_${bucket}.${metaSubject(bucket, name)}`, Empty, { timeout: 5000 });
  return reply.headers?.code !== 404 && reply.data.length > 0;
}

/**
 * Stores `source` under its SHA-256 (`sha256:<hex>`) unless that name exists. The bytes
 * are hashed as they are sent; `expectedDigest`, when given, must match.
 */
export async function putWriteOnce(nc: NatsConnection, bucket: string, source: AsyncIterable<Uint8Array>, expectedDigest?: string): Promise<{ digest: string; bytes: number; uploaded: boolean }> {
  if (expectedDigest !== undefined && (await objectExists(nc, bucket, expectedDigest))) return { digest: expectedDigest, bytes: 0, uploaded: false };
  const js = jetstream(nc);
  const id = nuid.next();
  const hash = createHash('sha256');
  let size = 0;
  let chunks = 0;
  let pending = Buffer.alloc(0);
  const send = async (bytes: Uint8Array) => {
    await js.publish(`$O.${bucket}.C.${id}`, bytes);
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
  const sha = hash.digest();
  const digest = `sha256:${sha.toString('hex')}`;
  if (expectedDigest !== undefined && expectedDigest !== digest) throw new Error(`the bytes sent hash to ${digest}, not ${expectedDigest}`);
  const info = { name: digest, bucket, nuid: id, size, chunks, mtime: new Date().toISOString(), digest: `SHA-256=${base64Url(sha)}`, options: { max_chunk_size: CHUNK } };
  try {
    await js.publish(metaSubject(bucket, digest), JSON.stringify(info), { expect: { lastSubjectSequence: 0 } });
  } catch (e) {
    // Someone stored the same bytes first: theirs stands (our chunks are unreferenced and age out with the stream's limits).
    if (String(e).includes('wrong last sequence')) return { digest, bytes: size, uploaded: false };
    throw e;
  }
  return { digest, bytes: size, uploaded: true };
}
