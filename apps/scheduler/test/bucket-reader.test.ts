import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { readBucket } from '../src/bucket-reader.js';
import { startNatsWithClient, type NatsWithClient } from '../../../test/support/nats.js';

describe('readBucket on a real nats-server', () => {
  let bus: NatsWithClient;
  let nc: NatsConnection;

  beforeAll(async () => {
    bus = await startNatsWithClient('bucket-reader-test');
    ({ nc } = bus);
  });

  afterAll(async () => {
    await bus?.close();
  });

  it('reads nothing from an empty bucket, without waiting', async () => {
    const kv = await new Kvm(nc).create('empty', { history: 1 });
    const t0 = Date.now();
    expect(await readBucket(kv, 'empty')).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('returns the last value of every key, leaving out deleted keys, also when the last write was a delete', async () => {
    const kv = await new Kvm(nc).create('mixed', { history: 1 });
    for (let i = 0; i < 3000; i++) await kv.put(`k${i}`, JSON.stringify({ i, v: 1 }));
    for (let i = 0; i < 3000; i += 3) await kv.put(`k${i}`, JSON.stringify({ i, v: 2 }));
    for (let i = 1; i < 3000; i += 3) await kv.delete(`k${i}`);
    await kv.delete('k2999');
    const values = await readBucket<{ i: number; v: number }>(kv, 'mixed');
    const byKey = new Map(values.map((x) => [x.i, x.v]));
    expect(values).toHaveLength(3000 - 1000 - 1);
    expect(byKey.get(0)).toBe(2);
    expect(byKey.get(2)).toBe(1);
    expect(byKey.has(1)).toBe(false);
    expect(byKey.has(2999)).toBe(false);
  });

  it('reads only deletes as nothing', async () => {
    const kv = await new Kvm(nc).create('gone', { history: 1 });
    await kv.put('a', '{}');
    await kv.delete('a');
    expect(await readBucket(kv, 'gone')).toEqual([]);
  });
});
