import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectBus, durablePublish, NoResponders, requesterOf, RequestTimeout } from '../src/index.js';
import { startNats, type RunningNats } from '../../../test/support/nats.js';

describe('Requester and durablePublish on a real nats-server', () => {
  let nats: RunningNats;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectBus({ servers: nats.url, name: 'requester-test' });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'REQ_TEST', subjects: ['req.test.>'], duplicate_window: 60_000_000_000, max_msgs_per_subject: 1 });
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('matches concurrent replies to their requests', async () => {
    const sub = nc.subscribe('echo', { callback: (_e, m) => void setTimeout(() => m.respond(`re:${m.string()}`), Math.random() * 20) });
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => requesterOf(nc).request('echo', String(i), { timeoutMs: 2000 })));
    expect(replies.map((m) => m.string())).toEqual(Array.from({ length: 200 }, (_, i) => `re:${i}`));
    sub.unsubscribe();
  });

  it('says "no responders" at once, and times out a silent responder near its deadline', async () => {
    const started = Date.now();
    await expect(requesterOf(nc).request('nobody.here', 'x', { timeoutMs: 5000 })).rejects.toBeInstanceOf(NoResponders);
    expect(Date.now() - started).toBeLessThan(2000);
    const sub = nc.subscribe('silent', { callback: () => undefined });
    const t0 = Date.now();
    await expect(requesterOf(nc).request('silent', 'x', { timeoutMs: 300 })).rejects.toBeInstanceOf(RequestTimeout);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    sub.unsubscribe();
  });

  it('publishes durably, reports a repeated message ID as a duplicate, and names a refusal', async () => {
    const first = await durablePublish(nc, 'req.test.a', 'one', { msgId: 'm-1' });
    expect(first).toMatchObject({ stream: 'REQ_TEST', seq: 1 });
    expect(await durablePublish(nc, 'req.test.a', 'one again', { msgId: 'm-1' })).toMatchObject({ seq: 1, duplicate: true });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.getMessage('REQ_TEST', { last_by_subj: 'req.test.a' }))!.string()).toBe('one');
    // A stream that refuses: sealed against writes.
    await jsm.streams.add({ name: 'REQ_SEALED', subjects: ['req.sealed.>'], deny_delete: true, max_msg_size: 4 });
    await expect(durablePublish(nc, 'req.sealed.x', 'far too long for four bytes')).rejects.toThrow(/req\.sealed\.x: JetStream refused the write: .*maximum/i);
  });
});
