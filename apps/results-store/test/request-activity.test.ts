import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestActivity } from '../src/ops/request-activity.js';

describe('request activity (what the page backfill gives way to)', () => {
  let server: Server;
  let url: string;
  const activity = new RequestActivity();

  beforeAll(async () => {
    server = createServer((_req, res) => res.end('ok'));
    activity.watch(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('is quiet until a reader asks for something, busy for the quiet period after, then quiet again', async () => {
    expect(activity.busy(1000)).toBe(false);
    await (await fetch(`${url}/builds/j-0123456789`)).text();
    expect(activity.busy(1000)).toBe(true);
    expect(activity.busy(1000, Date.now() + 1500)).toBe(false);
  });

  it('does not count monitoring: a scraper polling /metrics or /healthz is not a reader', async () => {
    const quiet = new RequestActivity();
    const other = createServer((_req, res) => res.end('ok'));
    quiet.watch(other);
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    try {
      for (const path of ['/metrics', '/healthz', '/metrics?x=1']) await (await fetch(base + path)).text();
      expect(quiet.busy(1000)).toBe(false);
      await (await fetch(`${base}/metrics-dashboard`)).text();
      expect(quiet.busy(1000)).toBe(true);
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });
});
