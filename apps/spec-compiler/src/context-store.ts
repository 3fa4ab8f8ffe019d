import { blobInfo, blobStores, limits, RejectedError } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';

/**
 * Build contexts: blobs of the client that uploaded them (blob-store.ts in
 * @cairn/contracts). A job may name a context only once its client has uploaded it
 * whole, within the size limit; the worker checks the bytes against the digest.
 */
export class ContextStore {
  constructor(
    private readonly bus: NatsConnection,
    private readonly maxBytes: number = limits.maxContextBytes,
  ) {}

  async check(client: string, digest: string): Promise<void> {
    const meta = await blobInfo(this.bus, { store: 'contexts', owner: client, sha256: digest.replace(/^sha256:/, '') });
    if (meta === undefined) {
      throw new RejectedError(
        'not-found',
        `no build context ${digest} of client ${client} in stream ${blobStores.contexts.stream}: upload it before submitting`,
      );
    }
    if (meta.size > this.maxBytes) {
      throw new RejectedError('too-large', `build context ${digest} is ${meta.size} bytes, more than the limit of ${this.maxBytes}`);
    }
  }
}
