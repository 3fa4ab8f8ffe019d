/**
 * The image records (core/image-record.ts) in the `cairn-base-images` JetStream KV
 * bucket, one key per image. Every change is a compare-and-set on the revision the
 * change was computed from: two replicas (or a restarted process and a late reply of its
 * former self) cannot both claim a rebuild or both publish it; the loser re-reads and
 * finds the work taken.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { buckets, openBucket, throughBusRestarts } from '@cairn/contracts';
import { emptyRecord, type ImageRecord } from './core/image-record.js';

/** `debian:bookworm` -> `debian=bookworm`: KV keys take no colon. */
const keyOf = (name: string) => name.replace(':', '=');

export class ImageRecords {
  private constructor(private readonly kv: KV) {}

  static async open(nc: NatsConnection, warn: (message: string) => void): Promise<ImageRecords> {
    return new ImageRecords(await throughBusRestarts(`opening the ${buckets.baseImages} bucket`, () => openBucket(nc, buckets.baseImages), warn));
  }

  async get(name: string): Promise<{ record: ImageRecord; revision: number }> {
    const entry = await this.kv.get(keyOf(name));
    if (!entry || entry.operation !== 'PUT' || entry.length === 0) return { record: emptyRecord(name), revision: 0 };
    return { record: entry.json<ImageRecord>(), revision: entry.revision };
  }

  /** Every image of `names`, as stored now. */
  async all(names: readonly string[]): Promise<Map<string, ImageRecord>> {
    const records = new Map<string, ImageRecord>();
    await Promise.all(names.map(async (name) => records.set(name, (await this.get(name)).record)));
    return new Map(names.map((name) => [name, records.get(name)!]));
  }

  /**
   * Applies `change` to the stored record, again on a newer one when someone wrote in
   * between. `change` returns undefined when there is nothing (left) to do; the result
   * is the record written, or undefined when nothing was.
   */
  async update(name: string, change: (record: ImageRecord) => ImageRecord | undefined): Promise<ImageRecord | undefined> {
    for (;;) {
      const { record, revision } = await this.get(name);
      const next = change(record);
      if (next === undefined) return undefined;
      try {
        const body = JSON.stringify(next);
        if (revision === 0) await this.kv.create(keyOf(name), body);
        else await this.kv.update(keyOf(name), body, revision);
        return next;
      } catch (e) {
        if (!/wrong last sequence|key exists/i.test(String(e))) throw e;
      }
    }
  }
}
