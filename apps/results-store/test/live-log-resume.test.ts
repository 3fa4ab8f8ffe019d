/**
 * A live log whose stream is cut and resumed shows every line once (issue 15): each
 * event carries its place in the log as its ID, and a stream opened with that ID
 * (`Last-Event-ID`, as a browser reconnects, or `?from=`, as the page opens a new one)
 * goes on from there instead of from the start.
 */
import { connectBus } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { ClusterStandIn, newJobId, startResultsStore, stepFinished, stepStarted, type ResultsStoreUnderTest } from '../../../test/support/results-store.js';

interface SseEvent {
  event: string;
  id?: string;
  data: unknown;
}

/**
 * Reads the log events of `job` until `until` says it has enough, then hangs up (the
 * cut); `headers` and `query` say where to resume.
 */
async function readEvents(url: string, until: (events: SseEvent[]) => boolean, headers: Record<string, string> = {}): Promise<SseEvent[]> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 15_000);
  const events: SseEvent[] = [];
  try {
    const res = await fetch(url, { headers, signal: abort.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const fields = Object.fromEntries(
          block
            .split('\n')
            .filter((l) => !l.startsWith(':'))
            .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]),
        );
        if (fields['event']) events.push({ event: fields['event'], ...(fields['id'] ? { id: fields['id'] } : {}), data: JSON.parse(fields['data'] ?? 'null') });
      }
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return events;
}

/** The text of each numbered line the log events carry, in order. */
function linesOf(events: SseEvent[]): string[] {
  return events
    .filter((e) => e.event === 'log')
    .map((e) => e.data as { t: string; html?: string; title?: string })
    .flatMap((e) =>
      [...(e.html ?? e.title ?? '').matchAll(/<span class="l" id="L\d+"><a[^>]*><\/a>(.*?)<\/span>(?=<span class="l"|$)/g)].map((m) =>
        m[1]!.replace(/<[^>]*>/g, ''),
      ),
    );
}

describe('resuming a live log', () => {
  let nats: RunningNats;
  let rs: ResultsStoreUnderTest;
  let nc: NatsConnection;
  let cluster: ClusterStandIn;

  beforeAll(async () => {
    nats = await startNats();
    rs = await startResultsStore({ natsUrl: nats.url });
    nc = await connectBus({ servers: nats.url, name: 'test-cluster' });
    cluster = new ClusterStandIn(nc);
  }, 60_000);
  afterAll(async () => {
    await nc?.close();
    await rs?.close();
    await nats?.stop();
  });

  it('continues after the last event the client has, from Last-Event-ID or ?from=', async () => {
    const job = { job: newJobId(), name: 'resumed', client: 'alice', pool: 'linux-x86_64' };
    cluster.event(job, 'running', { worker: 'w1' });
    await cluster.log(job.client, job.job, 'line-1\nline-2\n');
    await cluster.log(job.client, job.job, stepStarted('[1/1] (from busybox)'));
    await cluster.log(job.client, job.job, '[1/1] (from busybox)\n');
    await cluster.log(job.client, job.job, 'línea-3\nline-4\n');
    const url = `${rs.url}/builds/${job.job}/log/events`;
    const first = await readEvents(url, (events) => linesOf(events).includes('line-4'));
    expect(linesOf(first)).toEqual(['line-1', 'line-2', '[1/1] (from busybox)', 'línea-3', 'line-4']);
    const last = first.filter((e) => e.event === 'log').at(-1)!.id!;
    // The ID is where in the log the event ends (its bytes, plus one for the step
    // boundary), with the run it belongs to.
    expect(last).toBe(`1:${Buffer.byteLength('line-1\nline-2\n[1/1] (from busybox)\nlínea-3\nline-4\n') + 1}`);

    // Cut; more is written while the page is away, the step's end among it.
    await cluster.log(job.client, job.job, stepFinished(true));
    await cluster.log(job.client, job.job, 'line-5\nline-6\n');
    await cluster.log(job.client, job.job, 'line-7\n', 'succeeded');
    const resumed = await readEvents(url, (events) => events.some((e) => e.event === 'end'), { 'last-event-id': last });
    expect(linesOf(resumed)).toEqual(['line-5', 'line-6', 'line-7']);
    expect(resumed.filter((e) => e.event === 'log').map((e) => (e.data as { t: string }).t)[0]).toBe('done');
    // Line numbers go on from where they were.
    expect(JSON.stringify(resumed)).toContain('id=\\"L6\\"');

    const fromQuery = await readEvents(`${url}?from=${encodeURIComponent(first.filter((e) => e.event === 'log')[0]!.id!)}`, (events) =>
      events.some((e) => e.event === 'end'),
    );
    expect(linesOf(fromQuery)).toEqual(['[1/1] (from busybox)', 'línea-3', 'line-4', 'line-5', 'line-6', 'line-7']);
    // Without either, from the start.
    expect(linesOf(await readEvents(url, (events) => events.some((e) => e.event === 'end')))).toHaveLength(8);
  });

  it('after a requeue, a page at the old run gets a reset and the new run whole; one at the new run only the rest', async () => {
    const job = { job: newJobId(), name: 'requeued', client: 'alice', pool: 'linux-x86_64' };
    cluster.event(job, 'running', { worker: 'w1' });
    await cluster.log(job.client, job.job, 'old-1\nold-2\n', undefined, 1, 'w1');
    const url = `${rs.url}/builds/${job.job}/log/events`;
    const first = await readEvents(url, (events) => linesOf(events).includes('old-2'));
    const atOld = first.filter((e) => e.event === 'log').at(-1)!.id!;
    await cluster.log(job.client, job.job, 'new-1\n', undefined, 2, 'w2');
    await cluster.log(job.client, job.job, 'new-2\n', 'succeeded', 2, 'w2');
    const resumed = await readEvents(url, (events) => events.some((e) => e.event === 'end'), { 'last-event-id': atOld });
    expect(resumed.map((e) => e.event)).toEqual(['reset', 'log', 'log', 'end']);
    expect(linesOf(resumed)).toEqual(['new-1', 'new-2']);
    const atNew = resumed.filter((e) => e.event === 'log')[0]!.id!;
    expect(atNew).toBe('2:6');
    const again = await readEvents(url, (events) => events.some((e) => e.event === 'end'), { 'last-event-id': atNew });
    expect(again.map((e) => e.event)).toEqual(['log', 'end']);
    expect(linesOf(again)).toEqual(['new-2']);
  });
});
