/**
 * Reading artifacts from the JetStream object store `cairn-artifacts`, where workers put
 * them under `sha256:<hex>`. The client's `get` sets up a consumer per object (about
 * 10 ms); most artifacts fit in one chunk, and a one-chunk object is read with a single
 * direct message get instead (about 1 ms), using the object store's documented layout
 * (NATS ADR-20: chunks on `$O.<bucket>.C.<nuid>`). Larger or linked objects go through
 * `get`. The bytes are checked against the SHA-256 by the blob store either way.
 */
import { objectStores, openObjectStore } from '@cairn/contracts';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Sha256 } from '../ids.js';

export class ArtifactUnavailableError extends Error {
  override readonly name = 'ArtifactUnavailableError';
}

const BUCKET = objectStores.artifacts;

export class ArtifactSource {
  private store: Promise<ObjectStore> | undefined;
  private jsm: Promise<JetStreamManager> | undefined;

  constructor(private readonly bus: NatsConnection) {}

  /** The bytes of `sha256:<hex>`; fails with ArtifactUnavailableError when the object store does not hold it. */
  async open(sha256: Sha256, what: string): Promise<AsyncIterable<Uint8Array>> {
    const name = `sha256:${sha256}`;
    let store: ObjectStore;
    try {
      this.store ??= openObjectStore(this.bus, BUCKET);
      store = await this.store;
    } catch (e) {
      this.store = undefined;
      throw new ArtifactUnavailableError(`${what}: opening object store ${BUCKET}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const info = await store.info(name);
    if (!info || info.deleted) throw new ArtifactUnavailableError(`${what}: ${name} is not in object store ${BUCKET}`);
    if (info.chunks === 1 && !info.options?.link) {
      this.jsm ??= jetstreamManager(this.bus);
      const chunk = await (await this.jsm).streams.getMessage(`OBJ_${BUCKET}`, { last_by_subj: `$O.${BUCKET}.C.${info.nuid}` });
      if (chunk) {
        return (async function* () {
          yield chunk.data;
        })();
      }
    }
    const object = await store.get(name);
    if (!object) throw new ArtifactUnavailableError(`${what}: ${name} is not in object store ${BUCKET}`);
    return (async function* () {
      yield* object.data as unknown as AsyncIterable<Uint8Array>;
      const error = await object.error;
      if (error) throw new ArtifactUnavailableError(`${what}: reading ${name} from ${BUCKET}: ${error.message}`);
    })();
  }
}
