import { PATH_METADATA, METHOD_METADATA } from '@nestjs/common/constants.js';
import { RequestMethod } from '@nestjs/common';
import { connectBus } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { ClusterStandIn, sampleResult, startResultsStore, type ResultsStoreUnderTest } from '../../../test/support/results-store.js';
import { ApiController } from '../src/api/api.controller.js';
import { UploadController } from '../src/api/upload.controller.js';
import { TokenService } from '../src/auth/token-service.js';
import { diff } from '../src/queries/line-diff.js';

async function waitFor(url: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await fetch(url)).status !== 200) {
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within 15 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('pages, feeds and the JSON API', () => {
  let nats: RunningNats;
  let rs: ResultsStoreUnderTest;
  let nc: NatsConnection;
  const ok = sampleResult({ name: 'web <app>', client: 'dora', finishedAt: Date.now() - 60_000 });
  const bad = sampleResult({
    name: 'web <app>',
    client: 'dora',
    state: 'failed',
    failure: 'step 2 <exit 1> & more',
    pool: 'macos-arm64',
    platform: 'darwin/arm64',
  });

  beforeAll(async () => {
    nats = await startNats();
    rs = await startResultsStore({ natsUrl: nats.url, config: { adminTimeoutMs: 200 } });
    nc = await connectBus({ servers: nats.url, name: 'test-cluster' });
    const cluster = new ClusterStandIn(nc);
    await cluster.result(ok);
    await cluster.result(bad);
    await waitFor(`${rs.url}/api/v1/builds/${ok.job}`);
    await waitFor(`${rs.url}/api/v1/builds/${bad.job}`);
  });
  afterAll(async () => {
    await nc?.close();
    await rs?.close();
    await nats?.stop();
  });

  it('filters the build list by status, pool, platform, client and text', async () => {
    const get = async (q: string) => ((await (await fetch(`${rs.url}/api/v1/builds?${q}`)).json()) as { items: { id: string }[] }).items.map((b) => b.id);
    expect(await get('state=failed')).toEqual([bad.job]);
    expect(await get('pool=macos-arm64')).toEqual([bad.job]);
    expect(await get('platform=linux%2Famd64')).toEqual([ok.job]);
    expect(await get('client=dora&q=APP')).toEqual([bad.job, ok.job]);
    expect((await fetch(`${rs.url}/api/v1/builds?state=exploded`)).status).toBe(400);
    const html = await (await fetch(`${rs.url}/builds?state=failed`)).text();
    expect(html).toContain(bad.job);
    expect(html).not.toContain(ok.job);
  });

  it('escapes what users control: job names and failure reasons never become markup', async () => {
    const html = await (await fetch(`${rs.url}/builds/${bad.job}`)).text();
    expect(html).toContain('web &lt;app&gt;');
    expect(html).toContain('step 2 &lt;exit 1&gt; &amp; more');
    expect(html).not.toContain('<app>');
    const res = await fetch(`${rs.url}/builds/${bad.job}`);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
  });

  it('shows how to reproduce a build and serves its spec', async () => {
    const detail = (await (await fetch(`${rs.url}/api/v1/builds/${ok.job}`)).json()) as { reproduce: { local: string; submit: string; fetch: string } };
    expect(detail.reproduce.local).toBe('cairn build -f web-app.spec .');
    expect(detail.reproduce.submit).toBe("cairn submit --pool linux-x86_64 --name 'web <app>' -f web-app.spec");
    const spec = await fetch(`${rs.url}/builds/${ok.job}/spec`);
    expect(await spec.text()).toBe(ok.spec);
  });

  it('draws a job history chart and a status badge', async () => {
    const job = await (await fetch(`${rs.url}/jobs/${encodeURIComponent('web <app>')}`)).text();
    expect(job).toMatch(/<svg class="chart"[^>]*role="img"[^>]*aria-label="History of web &lt;app&gt;: 2 builds, 50% succeeded/);
    expect((job.match(/<rect class="(succeeded|failed)"/g) ?? []).length).toBe(2);
    const badge = await fetch(`${rs.url}/jobs/${encodeURIComponent('web <app>')}/badge.svg`);
    expect(badge.headers.get('content-type')).toContain('image/svg+xml');
    expect(await badge.text()).toContain('failing');
    expect((await fetch(`${rs.url}/jobs/nope/badge.svg`)).status).toBe(404);
  });

  it('publishes failures as an Atom feed', async () => {
    const res = await fetch(`${rs.url}/failures.atom`);
    expect(res.headers.get('content-type')).toContain('application/atom+xml');
    const feed = await res.text();
    expect(feed).toContain('<feed xmlns="http://www.w3.org/2005/Atom">');
    expect(feed).toContain(`/builds/${bad.job}</id>`);
    expect(feed).toContain('step 2 &lt;exit 1&gt; &amp; more');
    expect(feed).not.toContain(ok.job);
  });

  it('documents every API route in /openapi.json', async () => {
    const doc = (await (await fetch(`${rs.url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe('3.1.0');
    const served: string[] = [];
    for (const controller of [ApiController, UploadController]) {
      for (const name of Object.getOwnPropertyNames(controller.prototype)) {
        const handler = (controller.prototype as unknown as Record<string, unknown>)[name];
        const path = typeof handler === 'function' ? (Reflect.getMetadata(PATH_METADATA, handler as object) as string | undefined) : undefined;
        if (!path || !path.startsWith('api/')) continue;
        const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler as object) as number]!.toLowerCase();
        served.push(`${method} /${path.replace(/:(\w+)/g, '{$1}').replace(/\*(\w+)/g, '{$1}')}`);
      }
    }
    expect(served.length).toBeGreaterThan(10);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(served.filter((s) => !documented.includes(s))).toEqual([]);
  });

  it('reports the scheduler as unavailable rather than hanging when it does not answer', async () => {
    const started = Date.now();
    const res = await fetch(`${rs.url}/api/v1/workers`);
    expect(res.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(3000);
    const page = await (await fetch(rs.url)).text();
    expect(page).toContain('Workers unavailable');
  });

  it('serves /healthz and metrics for ingest, lag, database and storage', async () => {
    const health = await (await fetch(`${rs.url}/healthz`)).json();
    expect(health).toEqual({ ok: true, checks: { 'nats-open': 'ok', nats: 'ok', jetstream: 'ok', database: 'ok', 'results-consumer': 'ok' } });
    const metrics = await (await fetch(`${rs.url}/metrics`)).text();
    expect(metrics).toMatch(/cairn_results_ingested_total\{source="cluster",outcome="stored"\} 2/);
    expect(metrics).toContain('cairn_results_ingest_lag_seconds_count{source="cluster"} 2');
    expect(metrics).toMatch(/cairn_results_db_seconds_count\{operation="record"\} 2/);
    expect(metrics).toContain('cairn_results_storage_bytes');
    expect(metrics).toContain('cairn_results_backlog');
  });

  it('compresses pages for clients that take gzip', async () => {
    const res = await fetch(`${rs.url}/builds`, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.headers.get('content-encoding')).toBe('gzip');
    expect(await res.text()).toContain('<h1>Builds</h1>');
  });
});

describe('reading with a token', () => {
  let nats: RunningNats;
  let rs: ResultsStoreUnderTest;

  beforeAll(async () => {
    nats = await startNats();
    rs = await startResultsStore({ natsUrl: nats.url, env: { CAIRN_RESULTS_READ: 'token' } });
  });
  afterAll(async () => {
    await rs?.close();
    await nats?.stop();
  });

  it('asks for a token on pages and the API, accepts it as a header or through the login cookie', async () => {
    const page = await fetch(`${rs.url}/builds`);
    expect(page.status).toBe(401);
    expect(await page.text()).toContain('href="/login"');
    expect((await fetch(`${rs.url}/api/v1/builds`)).status).toBe(401);
    expect((await fetch(`${rs.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${rs.url}/login`)).status).toBe(200);

    const { token } = await new TokenService(rs.store.ds).issue('reader-1', 'reader');
    expect((await fetch(`${rs.url}/api/v1/builds`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const login = await fetch(`${rs.url}/login`, { method: 'POST', body: new URLSearchParams({ token }), redirect: 'manual' });
    expect(login.status).toBe(303);
    const cookie = login.headers.get('set-cookie')!;
    expect(cookie).toContain('HttpOnly');
    expect((await fetch(`${rs.url}/builds`, { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(200);
    const wrong = await fetch(`${rs.url}/login`, { method: 'POST', body: new URLSearchParams({ token: 'nope' }), redirect: 'manual' });
    expect(wrong.status).toBe(401);
  });
});

describe('comparing logs', () => {
  it('diffs lines minimally', () => {
    const ops = diff(['a', 'b', 'c', 'd'], ['a', 'x', 'c', 'd', 'e']).map((o) => `${o.kind[0]}${o.kind === 'added' ? o.b : o.a}`);
    expect(ops).toEqual(['sa', 'rb', 'ax', 'sc', 'sd', 'ae']);
  });
});
