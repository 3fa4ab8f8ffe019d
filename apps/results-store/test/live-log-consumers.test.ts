/**
 * Issue 19, item 3: following a build's log over server-sent events must not leave
 * JetStream consumers behind. A request for a build nobody knows gets a 404 and no
 * consumer at all; a reader that goes away takes its consumer with it; and while it
 * reads, the consumer's inactivity threshold is seconds, not the ~347 days it was when
 * nanoseconds were given to an option that takes milliseconds.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { streams, subjects } from '@cairn/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { ClusterStandIn, newJobId, spawnResultsStore, type ResultsStoreProcess } from '../../../test/support/results-store.js';

describe('live logs and JetStream consumers', () => {
  let nats: RunningNats;
  let rs: ResultsStoreProcess;
  let nc: NatsConnection;
  let dir: string;

  const consumers = async () => {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(streams.logs.name)).state.consumer_count;
  };

  /** Opens the event stream, waits for the status (and, when asked, the first event), then hangs up. */
  async function openAndHangUp(path: string, waitFor?: string): Promise<number> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 10_000);
    try {
      const res = await fetch(`${rs.url}${path}`, { signal: abort.signal });
      if (waitFor && res.body) {
        const reader = res.body.getReader();
        let seen = '';
        while (!seen.includes(waitFor)) {
          const { value, done } = await reader.read();
          if (done) break;
          seen += new TextDecoder().decode(value);
        }
      }
      return res.status;
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
  }

  beforeAll(async () => {
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), 'cairn-live-consumers-'));
    rs = await spawnResultsStore({ CAIRN_NATS: nats.url, CAIRN_RESULTS_DIR: dir, CAIRN_RESULTS_DB: join(dir, 'results.sqlite') });
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await rs?.stop();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers 404 for 300 unknown builds and leaves no consumer behind', async () => {
    const before = await consumers();
    const statuses: number[] = [];
    const ids = Array.from({ length: 300 }, () => newJobId());
    // 20 at a time, as a scripted client would.
    for (let i = 0; i < ids.length; i += 20) {
      statuses.push(...(await Promise.all(ids.slice(i, i + 20).map((id) => openAndHangUp(`/builds/${id}/log/events`)))));
    }
    expect(new Set(statuses)).toEqual(new Set([404]));
    await expect.poll(consumers, { timeout: 10_000, interval: 250 }).toBe(before);
  });

  it('removes the consumer of a live log when its reader disconnects, and keeps its idle threshold short', async () => {
    const cluster = new ClusterStandIn(nc);
    const job = { job: newJobId(), name: 'live-one', client: 'alice', pool: 'linux-x86_64' };
    cluster.event(job, 'running', { worker: 'w1' });
    await cluster.log(job.client, job.job, '[1/1] (run (shell "sleep 100"))\nstill going\n');
    const before = await consumers();

    const abort = new AbortController();
    const res = await fetch(`${rs.url}/builds/${job.job}/log/events`, { signal: abort.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let seen = '';
    while (!seen.includes('still going')) seen += new TextDecoder().decode((await reader.read()).value);

    const jsm = await jetstreamManager(nc);
    const open = [];
    for await (const c of jsm.consumers.list(streams.logs.name)) open.push(c);
    expect(open.length).toBe(before + 1);
    // Nanoseconds on the wire: at most a minute of idleness before the server drops it anyway.
    expect(open[open.length - 1]!.config.inactive_threshold).toBeLessThanOrEqual(60e9);

    abort.abort();
    await expect.poll(consumers, { timeout: 5_000, interval: 100 }).toBe(before);

    // Readers coming and going many times leave nothing either.
    for (let i = 0; i < 20; i++) expect(await openAndHangUp(`/builds/${job.job}/log/events`, 'still going')).toBe(200);
    await expect.poll(consumers, { timeout: 5_000, interval: 100 }).toBe(before);
  });

  it("shows only the chunks of the worker that ran the run, not chunks in another worker's subject", async () => {
    const cluster = new ClusterStandIn(nc);
    const job = { job: newJobId(), name: 'forged-live', client: 'alice', pool: 'linux-x86_64' };
    cluster.event(job, 'running', { worker: 'w1' });
    await cluster.log(job.client, job.job, 'real: compiling\n', undefined, 1, 'w1');
    // As another worker would publish them (were NATS not stopping it): same run, a made-up run.
    const js = jetstream(nc);
    const forge = (attempt: number, seq: number, text: string, end?: string) =>
      js.publish(subjects.log(job.client, job.job, 'w9'), JSON.stringify({ job: job.job, attempt, seq, text, ...(end ? { end } : {}) }));
    await forge(1, 2, 'forged: all tests passed\n', 'succeeded');
    await forge(2, 1, 'forged: a run that never was\n', 'succeeded');
    await cluster.log(job.client, job.job, 'real: 3 tests failed\n', 'failed', 1, 'w1');

    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 20_000);
    try {
      const res = await fetch(`${rs.url}/builds/${job.job}/log/events`, { signal: abort.signal });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      let seen = '';
      while (!seen.includes('event: end')) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
      expect(seen).toContain('real: compiling');
      expect(seen).toContain('real: 3 tests failed');
      expect(seen).toMatch(/event: end\ndata: \{"state":"failed"\}/);
      expect(seen).not.toContain('forged');
      expect(seen).not.toContain('event: reset');
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
  });
});
