import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus } from '@cairn/contracts';
import { parseStoreSpec } from '@cairn/store';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { startWorkerAgent, type RunningAgent } from '../src/index.js';
import { assignment, makeWorkerHost, SchedulerStandIn, spec, type WorkerHost } from './support.js';

/**
 * Low disk, made real by the threshold rather than by filling the disk: the worker
 * compares the store's real free space (statfs of a real btrfs) with CAIRN_PRUNE_BELOW.
 */
describe('a worker-agent whose store runs low on space', () => {
  let nats: RunningNats;
  let host: WorkerHost;
  let nc: NatsConnection;
  let worker: RunningAgent | undefined;

  beforeAll(async () => {
    nats = await startNats();
    host = await makeWorkerHost(1024);
    nc = await connectBus({ servers: nats.url, name: 'test-scheduler-stand-in' });
  });
  afterAll(async () => {
    await worker?.abort();
    await nc?.close();
    await nats?.stop();
    await host?.cleanup();
  });

  async function run(id: string, extra: NodeJS.ProcessEnv) {
    const scheduler = new SchedulerStandIn(nc, id).start();
    worker = await startWorkerAgent(host.env(nats.url, id, extra));
    await scheduler.waitFor('register');
    return scheduler;
  }
  const store = () => parseStoreSpec(`btrfs:${host.fs.path}`);
  const metric = async (name: string) => {
    const text = await (await fetch(`${worker!.service.httpUrl}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  };

  it('prunes its store when free space is below the threshold, and still takes jobs', async () => {
    // Fill the cache with plenty of room: nothing is pruned.
    let scheduler = await run('disk-a', {});
    const first = assignment({ spec: spec('(run (shell "echo old > /old"))') });
    await scheduler.assign(first);
    const old = (await scheduler.outcome(first.job)).outcome;
    expect(old.state, old.failure).toBe('succeeded');
    const second = assignment({ spec: spec('(run (shell "echo newer > /newer"))') });
    await scheduler.assign(second);
    const newer = (await scheduler.outcome(second.job)).outcome;
    expect(newer.state, newer.failure).toBe('succeeded');
    expect(await metric('cairn_worker_prune_events_total')).toBe(0);
    await worker!.drain();
    scheduler.stop();

    // Now the threshold is above the free space but below twice it: prune, keep working.
    const { bytesFree } = await store().df();
    scheduler = await run('disk-b', { CAIRN_PRUNE_BELOW: String(Math.floor(bytesFree * 1.5)) });
    expect(await metric('cairn_worker_prune_events_total')).toBeGreaterThanOrEqual(1);
    expect(await metric('cairn_worker_pruned_snapshots_total')).toBeGreaterThanOrEqual(3);
    for (const s of [...old.steps, ...newer.steps]) expect(await store().exists(s.id), s.op).toBe(false);
    const hb = await scheduler.waitFor('heartbeat');
    expect(hb.refusing).toBe(false);
    const third = assignment({ spec: spec('(run (shell "echo still-working"))') });
    expect(await scheduler.assign(third)).toEqual({ ok: true, value: { accepted: true } });
    expect((await scheduler.outcome(third.job)).outcome.state).toBe('succeeded');
    await worker!.drain();
    scheduler.stop();
  });

  it('refuses new jobs below half the threshold, in heartbeats, assignments and /healthz', async () => {
    const { bytesTotal } = await store().df();
    const scheduler = await run('disk-c', { CAIRN_PRUNE_BELOW: String(bytesTotal * 4) });
    expect((await scheduler.waitFor('heartbeat')).refusing).toBe(true);
    const reply = await scheduler.assign(assignment({ spec: spec('(run (shell "true"))') }));
    expect(reply.ok && reply.value.accepted).toBe(false);
    expect(reply.ok && reply.value.reason).toMatch(
      new RegExp(`^low disk: the btrfs store at ${host.fs.path} has \\d+ bytes free, below half of the prune threshold ${bytesTotal * 4}$`),
    );
    const health = await fetch(`${worker!.service.httpUrl}/healthz`);
    expect(health.status).toBe(503);
    expect(((await health.json()) as { checks: Record<string, string> }).checks.store).toMatch(/^low disk: /);
    expect(await metric('cairn_worker_refusing')).toBe(1);
    scheduler.stop();
  });
});
