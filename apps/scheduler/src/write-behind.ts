/**
 * Writes to a KV bucket that coalesce: while a key's write is in flight, newer values
 * for that key replace each other and only the latest is written next. `put` resolves
 * once a write holding this value (or a newer one) is stored, so a caller that must not
 * act before its state is durable (assigning a job) can wait, and the bucket sees one
 * write per key per round trip however fast the state changes. A failed write (NATS
 * restarting) is retried until it lands.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { backoffDelay, durablePublish, type Backoff } from '@cairn/contracts';

/** Where a WriteBehind's values go. */
export interface BucketWriter {
  put(key: string, value: string): Promise<unknown>;
  delete(key: string): Promise<unknown>;
}

/**
 * A KV bucket's writes, puts as plain JetStream publishes on `$KV.<bucket>.<key>` (what
 * `kv.put` sends, without its per-request timer and Error: see contracts requester.ts).
 * Keys here are job and worker IDs, already checked as subject tokens.
 */
export function bucketWriter(nc: NatsConnection, kv: KV, bucket: string): BucketWriter {
  return {
    put: (key, value) => durablePublish(nc, `$KV.${bucket}.${key}`, value),
    delete: (key) => kv.delete(key),
  };
}

/** A failed write waits 50 ms, doubling up to 2 s, jittered as every retry is (contracts' retry.ts). */
const RETRY: Backoff = { firstMs: 50, maxMs: 2000 };

interface Slot {
  latest: string | null; // null = delete
  version: number;
  written: number;
  inFlight: boolean;
  waiters: { version: number; resolve: () => void }[];
}

export class WriteBehind {
  private readonly slots = new Map<string, Slot>();
  private readonly later = new Map<string, { timer: NodeJS.Timeout; text: string }>();
  private failures = 0;

  constructor(
    private readonly kv: BucketWriter,
    private readonly onError: (key: string, error: unknown) => void = () => undefined,
  ) {}

  put(key: string, value: unknown): Promise<void> {
    this.cancelLater(key);
    return this.enqueue(key, JSON.stringify(value));
  }

  /**
   * A write that may wait `delayMs`: for states whose loss in a crash changes nothing
   * (a job restored as assigned instead of running is handled the same way). When a
   * newer `put` for the key comes first, as it does for a short job, this write is
   * never made.
   */
  putLater(key: string, value: unknown, delayMs: number): void {
    this.cancelLater(key);
    const text = JSON.stringify(value);
    const timer = setTimeout(() => {
      this.later.delete(key);
      void this.enqueue(key, text);
    }, delayMs);
    this.later.set(key, { timer, text });
  }

  private cancelLater(key: string): void {
    const pending = this.later.get(key);
    if (pending !== undefined) {
      clearTimeout(pending.timer);
      this.later.delete(key);
    }
  }

  /**
   * Resolves once the newest value given for `key` is stored (a late write for it is
   * made now): for a caller that must not act before a state handed over earlier is durable.
   */
  written(key: string): Promise<void> {
    const pending = this.later.get(key);
    if (pending !== undefined) {
      this.cancelLater(key);
      return this.enqueue(key, pending.text);
    }
    const slot = this.slots.get(key);
    return slot === undefined || slot.version === slot.written ? Promise.resolve() : this.waitFor(key, slot.version);
  }

  delete(key: string): Promise<void> {
    this.cancelLater(key);
    return this.enqueue(key, null);
  }

  /** Writes not yet stored (for /metrics and shutdown). */
  get pending(): number {
    let n = 0;
    for (const s of this.slots.values()) if (s.version !== s.written) n++;
    return n;
  }

  get failedWrites(): number {
    return this.failures;
  }

  /** Resolves when everything enqueued so far is stored (late writes are made now). */
  async flush(): Promise<void> {
    for (const [key, { text }] of [...this.later]) {
      this.cancelLater(key);
      void this.enqueue(key, text);
    }
    await Promise.all([...this.slots.entries()].map(([key, s]) => (s.version === s.written ? undefined : this.waitFor(key, s.version))));
  }

  private enqueue(key: string, value: string | null): Promise<void> {
    let slot = this.slots.get(key);
    // The newest value enqueued for this key (being written or about to be) is this very
    // one: wait for that write instead of writing the same bytes a second time. This is
    // what happens when an effect persists a record and its caller then waits for it.
    if (slot && slot.latest === value) return slot.version === slot.written ? Promise.resolve() : this.waitFor(key, slot.version);
    if (!slot) this.slots.set(key, (slot = { latest: value, version: 0, written: 0, inFlight: false, waiters: [] }));
    slot.latest = value;
    slot.version++;
    const done = this.waitFor(key, slot.version);
    if (!slot.inFlight) void this.drain(key, slot);
    return done;
  }

  private waitFor(key: string, version: number): Promise<void> {
    const slot = this.slots.get(key)!;
    return new Promise((resolve) => slot.waiters.push({ version, resolve }));
  }

  private async drain(key: string, slot: Slot): Promise<void> {
    slot.inFlight = true;
    let failures = 0;
    while (slot.written !== slot.version) {
      const version = slot.version;
      const value = slot.latest;
      try {
        if (value === null) await this.kv.delete(key);
        else await this.kv.put(key, value);
        slot.written = version;
        failures = 0;
        slot.waiters = slot.waiters.filter((w) => (w.version <= version ? (w.resolve(), false) : true));
      } catch (e) {
        this.failures++;
        this.onError(key, e);
        await new Promise((r) => setTimeout(r, backoffDelay(failures++, RETRY)));
      }
    }
    slot.inFlight = false;
    if (slot.waiters.length === 0) this.slots.delete(key);
  }
}
