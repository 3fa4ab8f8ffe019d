/**
 * WriteBehind's retries and coalescing, on a bucket writer that keeps its values in a map
 * and refuses the writes it is told to, as a bucket does while NATS restarts.
 */
import { describe, expect, it } from 'vitest';
import { WriteBehind, type BucketWriter } from '../src/write-behind.js';

function flakyBucket(failFirst: number) {
  const stored = new Map<string, string>();
  const times: number[] = [];
  let calls = 0;
  const writer: BucketWriter = {
    put: async (key, value) => {
      times.push(Date.now());
      if (++calls <= failFirst) throw new Error('TimeoutError: timeout');
      stored.set(key, value);
    },
    delete: async (key) => {
      times.push(Date.now());
      if (++calls <= failFirst) throw new Error('TimeoutError: timeout');
      stored.delete(key);
    },
  };
  return { writer, stored, times };
}

describe('WriteBehind', () => {
  it('tries a failed write again, waiting longer after each failure, until it is stored', async () => {
    const bucket = flakyBucket(4);
    const errors: string[] = [];
    const kv = new WriteBehind(bucket.writer, (key) => errors.push(key));
    await kv.put('job-1', { state: 'queued' });
    expect(bucket.stored.get('job-1')).toBe('{"state":"queued"}');
    expect(errors).toEqual(['job-1', 'job-1', 'job-1', 'job-1']);
    expect(kv.failedWrites).toBe(4);
    expect(kv.pending).toBe(0);
    // The waits after failures 1..4 are at least half of 50, 100, 200 and 400 ms.
    const waits = bucket.times.slice(1).map((t, i) => t - bucket.times[i]!);
    expect(waits).toHaveLength(4);
    waits.forEach((wait, i) => expect(wait).toBeGreaterThanOrEqual(25 * 2 ** i - 2));
  });

  it('writes only the newest value of a key that changed while a write was failing', async () => {
    const bucket = flakyBucket(1);
    const kv = new WriteBehind(bucket.writer);
    const first = kv.put('job-1', 1);
    const second = kv.put('job-1', 2);
    const third = kv.put('job-1', 3);
    await Promise.all([first, second, third]);
    expect(bucket.stored.get('job-1')).toBe('3');
    expect(bucket.times).toHaveLength(2);
    await kv.delete('job-1');
    expect(bucket.stored.has('job-1')).toBe(false);
  });
});
