/**
 * The build list (issue 15): newer / older / newest pages with the total, the orders
 * (finish time, start time, duration, name) and a date range, on SQLite and PostgreSQL;
 * the same cursors in the JSON API.
 */
import { connectBus } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { ClusterStandIn, FLAVOURS, sampleResult, startResultsStore, type ResultsStoreUnderTest } from '../../../test/support/results-store.js';

interface ApiPage {
  items: { id: string; job: string; durationMs: number; finishedAt: number }[];
  next?: string;
  prev?: string;
}

const DAY = 86_400_000;
const base = Date.parse('2026-11-10T12:00:00Z');

describe.each(FLAVOURS)('the build list on %s', (database) => {
  let nats: RunningNats;
  let rs: ResultsStoreUnderTest;
  let nc: NatsConnection;
  // Seven builds, one a day from 10 November; durations and names in another order than time.
  const builds = ['delta', 'alpha', 'golf', 'charlie', 'echo', 'bravo', 'foxtrot'].map((name, i) =>
    sampleResult({ name, startedAt: base + i * DAY - (((i * 37) % 7) + 1) * 1000, finishedAt: base + i * DAY, submittedAt: base + i * DAY - 10_000 }),
  );
  const api = async (query: string): Promise<ApiPage> => {
    const res = await fetch(`${rs.url}/api/v1/builds?${query}`);
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as ApiPage;
  };

  beforeAll(async () => {
    nats = await startNats();
    rs = await startResultsStore({ natsUrl: nats.url, database });
    nc = await connectBus({ servers: nats.url, name: 'test-cluster' });
    const cluster = new ClusterStandIn(nc);
    for (const b of builds) await cluster.result(b);
    const deadline = Date.now() + 20_000;
    while ((await api('limit=10')).items.length < 7 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  }, 60_000);
  afterAll(async () => {
    await nc?.close();
    await rs?.close();
    await nats?.stop();
  });

  it('goes older, newer and back to the newest page, with the total', async () => {
    const newestFirst = [...builds].reverse().map((b) => b.job);
    const first = await api('limit=3');
    expect(first.items.map((b) => b.id)).toEqual(newestFirst.slice(0, 3));
    expect(first.prev).toBeUndefined();
    const second = await api(`limit=3&before=${encodeURIComponent(first.next!)}`);
    expect(second.items.map((b) => b.id)).toEqual(newestFirst.slice(3, 6));
    const third = await api(`limit=3&before=${encodeURIComponent(second.next!)}`);
    expect(third.items.map((b) => b.id)).toEqual(newestFirst.slice(6));
    expect(third.next).toBeUndefined();
    const backToSecond = await api(`limit=3&after=${encodeURIComponent(third.prev!)}`);
    expect(backToSecond.items.map((b) => b.id)).toEqual(newestFirst.slice(3, 6));
    const backToFirst = await api(`limit=3&after=${encodeURIComponent(backToSecond.prev!)}`);
    expect(backToFirst.items.map((b) => b.id)).toEqual(newestFirst.slice(0, 3));
    expect(backToFirst.prev).toBeUndefined();

    const html = await (await fetch(`${rs.url}/builds?limit=3&before=${encodeURIComponent(first.next!)}`)).text();
    expect(html).toContain('<p id="total">7 builds match.</p>');
    expect(html).toMatch(/<a href="\/builds\?limit=3" rel="first">|<a href="\/builds" rel="first">/);
    expect(html).toContain(`rel="prev"`);
    expect(html).toContain(`rel="next"`);
  });

  it('sorts by duration, name and start time, each paged by its own cursor', async () => {
    const byDuration = [...builds].sort((a, b) => b.finishedAt - b.startedAt - (a.finishedAt - a.startedAt) || (a.job < b.job ? 1 : -1)).map((b) => b.job);
    const d1 = await api('sort=duration&limit=4');
    const d2 = await api(`sort=duration&limit=4&before=${encodeURIComponent(d1.next!)}`);
    expect([...d1.items, ...d2.items].map((b) => b.id)).toEqual(byDuration);
    const n1 = await api('sort=name&limit=4');
    const n2 = await api(`sort=name&limit=4&before=${encodeURIComponent(n1.next!)}`);
    expect([...n1.items, ...n2.items].map((b) => b.job)).toEqual(['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf']);
    expect((await api(`sort=name&limit=4&after=${encodeURIComponent(n2.prev!)}`)).items.map((b) => b.job)).toEqual(['alpha', 'bravo', 'charlie', 'delta']);
    const byStart = [...builds].sort((a, b) => b.startedAt - a.startedAt).map((b) => b.job);
    expect((await api('sort=started&limit=10')).items.map((b) => b.id)).toEqual(byStart);
    // A cursor of one order is no cursor of another.
    const wrong = await fetch(`${rs.url}/api/v1/builds?sort=duration&before=${encodeURIComponent(n1.next!)}`);
    expect(wrong.status).toBe(400);
    expect(await wrong.text()).toContain('query parameter before');
  });

  it('filters by a range of days (UTC), both ends included', async () => {
    const page = await api('from=2026-11-11&to=2026-11-13&limit=10');
    expect(page.items.map((b) => b.job)).toEqual(['charlie', 'golf', 'alpha']);
    const html = await (await fetch(`${rs.url}/builds?from=2026-11-11&to=2026-11-13`)).text();
    expect(html).toContain('<p id="total">3 builds match.</p>');
    expect(html).toContain('name="from" value="2026-11-11"');
    expect(html).toContain('name="to" value="2026-11-13"');
    expect((await fetch(`${rs.url}/api/v1/builds?from=11/11/2026`)).status).toBe(400);
  });
});
