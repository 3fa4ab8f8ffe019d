/**
 * Streams and buckets copied across a NATS cluster's nodes (CAIRN_JETSTREAM_REPLICAS, 3
 * in infra/k8s): against a real 3-node JetStream cluster, ensureAll makes every stream
 * and bucket with 3 replicas, and a process started without the setting leaves them so.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { buckets, connectBus, ensureAll, expectedStreamNames, jetStreamFromEnv, streams } from '../src/index.js';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { freePort } from '../../../test/support/ports.js';

describe('JetStream replicas on a 3-node cluster', () => {
  let nodes: RunningNats[] = [];
  let nc: NatsConnection;

  beforeAll(async () => {
    const routes = await Promise.all([0, 1, 2].map(() => freePort()));
    const routeList = routes.map((p) => `nats-route://127.0.0.1:${p}`).join(', ');
    nodes = await Promise.all(
      routes.map((port, i) =>
        startNats({ config: `server_name: n${i}\ncluster {\n  name: cairn-test\n  listen: 127.0.0.1:${port}\n  routes: [${routeList}]\n}\n` }),
      ),
    );
    nc = await connectBus({ servers: nodes.map((n) => n.url), name: 'replicas-test' });
    // The nodes elect a JetStream meta leader once they see each other: until then, asking fails.
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await ensureAll(nc, { replicas: 3 });
        break;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`the cluster never took the streams: ${String(e)}`, { cause: e });
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }, 120_000);

  afterAll(async () => {
    await nc?.close();
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it('makes every stream and bucket with 3 replicas, one on each node', async () => {
    const jsm = await jetstreamManager(nc);
    for (const name of expectedStreamNames()) {
      const info = await jsm.streams.info(name);
      expect(info.config.num_replicas, name).toBe(3);
      expect(info.cluster?.replicas?.length ?? 0, name).toBe(2);
    }
    expect(expectedStreamNames()).toContain(`KV_${buckets.jobs}`);
  });

  it('keeps them at 3 when a process without the setting ensures them again', async () => {
    await ensureAll(nc);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(streams.results.name)).config.num_replicas).toBe(3);
    expect((await jsm.streams.info(`KV_${buckets.jobs}`)).config.num_replicas).toBe(3);
  });
});

describe('CAIRN_JETSTREAM_REPLICAS', () => {
  it('is a whole number from 1 to 5, or unset', () => {
    expect(jetStreamFromEnv({})).toEqual({});
    expect(jetStreamFromEnv({ CAIRN_JETSTREAM_REPLICAS: '3' })).toEqual({ replicas: 3 });
    expect(() => jetStreamFromEnv({ CAIRN_JETSTREAM_REPLICAS: '7' })).toThrow('CAIRN_JETSTREAM_REPLICAS="7": expected a whole number from 1 to 5');
    expect(() => jetStreamFromEnv({ CAIRN_JETSTREAM_REPLICAS: 'three' })).toThrow('CAIRN_JETSTREAM_REPLICAS="three"');
  });
});
