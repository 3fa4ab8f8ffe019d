/**
 * Reading artifacts: blobs of the worker that ran the job, named by their SHA-256
 * (blob-store.ts in @cairn/contracts). Reading them from that worker's name only means a
 * worker cannot put bytes under another job's artifacts. The bytes are checked against
 * the SHA-256 as they come, and by the blob store again.
 */
import { BlobError, readBlob } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Sha256 } from '../ids.js';

export class ArtifactUnavailableError extends Error {
  override readonly name = 'ArtifactUnavailableError';
}

export class ArtifactSource {
  constructor(private readonly bus: NatsConnection) {}

  /** The bytes of `worker`'s artifact `sha256`; fails with ArtifactUnavailableError when it was never stored or cannot be read. */
  async open(worker: string, sha256: Sha256, what: string): Promise<AsyncIterable<Uint8Array>> {
    const ref = { store: 'artifacts' as const, owner: worker, sha256 };
    let blob: Awaited<ReturnType<typeof readBlob>>;
    try {
      blob = await readBlob(this.bus, ref);
    } catch (e) {
      throw new ArtifactUnavailableError(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (blob === undefined) throw new ArtifactUnavailableError(`${what}: sha256:${sha256} of worker ${worker} was never stored`);
    const bytes = blob.bytes;
    return (async function* () {
      try {
        yield* bytes;
      } catch (e) {
        if (e instanceof BlobError) throw new ArtifactUnavailableError(`${what}: ${e.message}`);
        throw e;
      }
    })();
  }
}
