/**
 * Reads every value of a KV bucket in one pass: a watcher delivering the last value per
 * key, in one ordered stream, instead of listing the keys and getting each one (a round
 * trip per job: with the 24 h of finished jobs a busy cluster keeps, restarts took
 * minutes; bench/scheduler-restore.ts).
 */
import { KvWatchInclude, type KV } from '@nats-io/kv';

/** No entry for this long while some are still due: the read is abandoned (the caller retries). */
const STALL_MS = 10_000;

export async function readBucket<T>(kv: KV, name: string): Promise<T[]> {
  // An empty bucket delivers nothing at all, so there would be no last entry to wait for.
  if ((await kv.status()).values === 0) return [];
  const values = new Map<string, T>();
  // Deletes are delivered too: the last entry (delta 0) may be one, and it ends the read.
  const watch = await kv.watch({ include: KvWatchInclude.LastValue });
  let stalled = false;
  const stallTimer = () => setTimeout(() => ((stalled = true), watch.stop()), STALL_MS);
  let timer = stallTimer();
  try {
    for await (const entry of watch) {
      clearTimeout(timer);
      timer = stallTimer();
      if (entry.operation === 'PUT') values.set(entry.key, entry.json<T>());
      else values.delete(entry.key);
      if (entry.delta === 0) break;
    }
  } finally {
    clearTimeout(timer);
    watch.stop();
  }
  if (stalled) throw new Error(`reading bucket ${name} stalled: no entry for ${STALL_MS / 1000} s`);
  return [...values.values()];
}
