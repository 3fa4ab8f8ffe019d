import { limits, objectStores, openObjectStore, RejectedError } from '@cairn/contracts';
import type { ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';

/**
 * Build contexts in the `cairn-contexts` object store, named by `sha256:<hex>` of their
 * tar. A job may name a context only once it has been uploaded whole, within the size
 * limit, under the name of its own content: the object store records the SHA-256 of what
 * was put, so a context stored under another digest's name is refused here.
 */
export class ContextStore {
  private store: Promise<ObjectStore> | undefined;

  constructor(
    private readonly bus: NatsConnection,
    private readonly maxBytes: number = limits.maxContextBytes,
  ) {}

  async check(digest: string): Promise<void> {
    this.store ??= openObjectStore(this.bus, objectStores.contexts).catch((e: unknown) => {
      this.store = undefined;
      throw e;
    });
    const info = await (await this.store).info(digest);
    const where = `object store ${objectStores.contexts}`;
    if (info === null || info.deleted) {
      throw new RejectedError('not-found', `no build context ${digest} in ${where}: upload it before submitting`);
    }
    if (info.size > this.maxBytes) {
      throw new RejectedError('too-large', `build context ${digest} is ${info.size} bytes, more than the limit of ${this.maxBytes}`);
    }
    const stored = contentDigest(info.digest);
    if (stored !== digest) {
      throw new RejectedError('conflict', `build context ${digest} in ${where} has content ${stored ?? info.digest}, not what its name says`);
    }
  }
}

/** The object store writes `SHA-256=<base64url, padded>`; contexts are named `sha256:<hex>`. */
function contentDigest(recorded: string): string | undefined {
  const prefix = 'SHA-256=';
  if (!recorded.startsWith(prefix)) return undefined;
  const bytes = Buffer.from(recorded.slice(prefix.length), 'base64url');
  return bytes.length === 32 ? `sha256:${bytes.toString('hex')}` : undefined;
}
