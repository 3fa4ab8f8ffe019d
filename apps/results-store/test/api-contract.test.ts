import { buckets, connectBus, openBucket, type ServiceStatus } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import {
  ClusterStandIn,
  newJobId,
  sampleResult,
  schedulerStandIn,
  sha256Hex,
  startResultsStore,
  uploadBody,
  workerInfo,
  type ResultsStoreUnderTest,
} from '../../../test/support/results-store.js';
import { API, openApiDocument } from '../src/api/openapi.js';
import { TokenService } from '../src/auth/token-service.js';
import { UPLOAD_CONTENT_TYPE } from '../src/ingest/upload-format.js';

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 15 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the JSON API keeps to its OpenAPI document', () => {
  let nats: RunningNats;
  let rs: ResultsStoreUnderTest;
  let nc: NatsConnection;
  let stopScheduler: () => void;
  const tokens: Record<'reader' | 'writer' | 'admin', string> = { reader: '', writer: '', admin: '' };
  const artifactBytes = Buffer.from('hello artifact\n');
  let ok: ReturnType<typeof sampleResult>;
  let bad: ReturnType<typeof sampleResult>;
  /** `method path` of every route called, as the document names them. */
  const called = new Set<string>();

  /**
   * Calls route `template` (as `API` lists it) at `url`, and checks the answer: its status
   * is one the document lists for the route, and its body fits the schema listed for it.
   */
  async function call(
    method: 'get' | 'put' | 'post' | 'delete',
    template: string,
    url: string,
    init: { token?: keyof typeof tokens; headers?: Record<string, string>; body?: Uint8Array<ArrayBuffer> | string } = {},
  ): Promise<Response> {
    const headers = { ...init.headers, ...(init.token ? { authorization: `Bearer ${tokens[init.token]}` } : {}) };
    const res = await fetch(`${rs.url}${url}`, { method: method.toUpperCase(), headers, ...(init.body === undefined ? {} : { body: init.body }) });
    const operation = API[template]?.[method];
    expect(operation, `${method} ${template} is not in the document`).toBeDefined();
    const answer = operation!.responses[res.status];
    expect(answer, `${method} ${url} answered ${res.status}, which the document does not list`).toBeDefined();
    if (answer!.schema) {
      expect(res.headers.get('content-type'), `${method} ${url}`).toMatch(/^application\/json/);
      const parsed = answer!.schema.safeParse(await res.clone().json());
      expect(parsed.success ? [] : parsed.error.issues, `${method} ${url} ${res.status}`).toEqual([]);
    } else if (answer!.type) expect(res.headers.get('content-type'), `${method} ${url}`).toContain(answer!.type);
    else expect(await res.clone().text(), `${method} ${url} ${res.status}: no body documented`).toBe('');
    called.add(`${method} ${template}`);
    return res;
  }

  beforeAll(async () => {
    nats = await startNats();
    rs = await startResultsStore({ natsUrl: nats.url });
    nc = await connectBus({ servers: nats.url, name: 'test-cluster' });
    const cluster = new ClusterStandIn(nc);
    stopScheduler = schedulerStandIn(nc, {
      pools: [{ pool: 'linux-x86_64', paused: false, queued: 1, running: 0, workers: 1 }],
      workers: [workerInfo()],
      queues: [{ pool: 'linux-x86_64', client: 'alice', urgent: 0, normal: 1 }],
    });
    const service: ServiceStatus = {
      name: 'scheduler',
      state: 'ready',
      pid: 42,
      restarts: 1,
      quickFailures: 0,
      startedAt: Date.now(),
      lastExit: 'signal SIGKILL',
      events: [{ at: Date.now(), message: 'scheduler exited (signal SIGKILL); restarting in 1 s' }],
      supervisor: 7,
    };
    await (await openBucket(nc, buckets.services)).put('scheduler', JSON.stringify(service));
    for (const role of ['reader', 'writer', 'admin'] as const) tokens[role] = (await new TokenService(rs.store.ds).issue(`api-${role}`, role)).token;

    ok = sampleResult({ name: 'api-job', artifacts: [await cluster.artifact('out/hello.txt', artifactBytes)] });
    await cluster.log(ok.client, ok.job, '[1/2] (from busybox)\nhello\n', 'succeeded');
    bad = sampleResult({ name: 'api-job', state: 'failed', failure: 'step 2: exit 1', spec: '((from busybox)\n (run (shell "false")))' });
    await cluster.result(ok);
    await cluster.result(bad);
    cluster.event({ job: newJobId(), name: 'queued-now', client: 'alice', pool: 'linux-x86_64' }, 'queued');
    await until(
      async () => (await fetch(`${rs.url}/api/v1/builds/${bad.job}`)).status === 200 && (await fetch(`${rs.url}/api/v1/builds/${ok.job}`)).status === 200,
      'both builds stored',
    );
    await until(async () => ((await (await fetch(`${rs.url}/api/v1/live`)).json()) as { jobs: unknown[] }).jobs.length > 0, 'the queued job on the live board');
  });
  afterAll(async () => {
    stopScheduler?.();
    await nc?.close();
    await rs?.close();
    await nats?.stop();
  });

  it('serves the document made from the schemas', async () => {
    const res = await fetch(`${rs.url}/openapi.json`);
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(openApiDocument(rs.url))));
  });

  it('answers reads as documented', async () => {
    const list = await (await call('get', '/api/v1/builds', '/api/v1/builds?limit=1')).json();
    expect(list.next).toBeDefined();
    await call('get', '/api/v1/builds', '/api/v1/builds?state=failed&pool=linux-x86_64');
    await call('get', '/api/v1/builds', '/api/v1/builds?state=exploded');
    await call('get', '/api/v1/builds/{id}', `/api/v1/builds/${ok.job}`);
    await call('get', '/api/v1/builds/{id}', `/api/v1/builds/${bad.job}`);
    await call('get', '/api/v1/builds/{id}', `/api/v1/builds/${newJobId()}`);
    await call('get', '/api/v1/builds/{id}', '/api/v1/builds/not-an-id');
    const artifact = await call('get', '/api/v1/builds/{id}/artifacts/{path}', `/api/v1/builds/${ok.job}/artifacts/out/hello.txt`);
    expect(Buffer.from(await artifact.arrayBuffer())).toEqual(artifactBytes);
    await call('get', '/api/v1/builds/{id}/artifacts/{path}', `/api/v1/builds/${ok.job}/artifacts/out/hello.txt`, {
      headers: { 'if-none-match': `"sha256-${sha256Hex(artifactBytes)}"` },
    });
    await call('get', '/api/v1/builds/{id}/artifacts/{path}', `/api/v1/builds/${ok.job}/artifacts/out/missing`);
    await call('get', '/api/v1/builds/{id}/artifacts/{path}', '/api/v1/builds/not-an-id/artifacts/x');
    await call('get', '/api/v1/jobs', '/api/v1/jobs?q=api');
    await call('get', '/api/v1/jobs', '/api/v1/jobs?state=exploded');
    await call('get', '/api/v1/jobs/{name}', '/api/v1/jobs/api-job');
    await call('get', '/api/v1/jobs/{name}', '/api/v1/jobs/no-such-job');
    await call('get', '/api/v1/compare', `/api/v1/compare?a=${ok.job}&b=${bad.job}`);
    await call('get', '/api/v1/compare', `/api/v1/compare?a=${ok.job}&b=not-an-id`);
    await call('get', '/api/v1/compare', `/api/v1/compare?a=${ok.job}&b=${newJobId()}`);
    await call('get', '/api/v1/failures', '/api/v1/failures?limit=5');
    await call('get', '/api/v1/failures', '/api/v1/failures?limit=0');
    await call('get', '/api/v1/live', '/api/v1/live');
    await call('get', '/api/v1/pools', '/api/v1/pools');
    await call('get', '/api/v1/workers', '/api/v1/workers');
    await call('get', '/api/v1/queues', '/api/v1/queues');
    await call('get', '/api/v1/services', '/api/v1/services');
  });

  it('answers writes as documented', async () => {
    const tag = `/api/v1/builds/${ok.job}/tags/release`;
    await call('put', '/api/v1/builds/{id}/tags/{tag}', tag, { token: 'writer' });
    await call('put', '/api/v1/builds/{id}/tags/{tag}', tag);
    await call('put', '/api/v1/builds/{id}/tags/{tag}', tag, { token: 'reader' });
    await call('put', '/api/v1/builds/{id}/tags/{tag}', `/api/v1/builds/${ok.job}/tags/no%20spaces`, { token: 'writer' });
    await call('put', '/api/v1/builds/{id}/tags/{tag}', `/api/v1/builds/${newJobId()}/tags/release`, { token: 'writer' });
    await call('delete', '/api/v1/builds/{id}/tags/{tag}', tag, { token: 'writer' });

    const bytes = Buffer.from('uploaded\n');
    const result = sampleResult({ name: 'uploaded', artifacts: [{ path: 'out/u.txt', size: bytes.length, sha256: sha256Hex(bytes) }] });
    const upload = (body: Buffer, token?: keyof typeof tokens, type = UPLOAD_CONTENT_TYPE) =>
      call('post', '/api/v1/uploads', '/api/v1/uploads', { headers: { 'content-type': type }, body: new Uint8Array(body), ...(token ? { token } : {}) });
    expect((await upload(uploadBody({ result }, [bytes]), 'writer')).status).toBe(201);
    await upload(uploadBody({ result }, [bytes]), 'writer');
    await upload(uploadBody({ result: { ...result, job: newJobId() } }, [bytes]));
    await upload(uploadBody({ result: { ...result, job: newJobId() } }, [bytes]), 'reader');
    await upload(uploadBody({ result: { ...result, job: newJobId() } }, [bytes]), 'writer', 'text/plain');
    await upload(Buffer.from('not json\n'), 'writer');
    await upload(
      uploadBody({ result: { ...result, job: newJobId(), artifacts: [{ path: 'out/u.txt', size: bytes.length, sha256: sha256Hex('other') }] } }, [bytes]),
      'writer',
    );

    const issue = (body: unknown, token: keyof typeof tokens = 'admin', type = 'application/json') =>
      call('post', '/api/v1/tokens', '/api/v1/tokens', { token, headers: { 'content-type': type }, body: JSON.stringify(body) });
    const issued = (await (await issue({ user: 'api-new', role: 'reader', label: 'contract test' })).json()) as { id: number };
    await issue({ user: 'api-new', role: 'admin' });
    await issue({ user: 'has spaces', role: 'reader' });
    await issue({ user: 'api-new', role: 'reader' }, 'admin', 'text/plain');
    await issue({ user: 'api-new', role: 'reader' }, 'writer');
    await call('delete', '/api/v1/tokens/{id}', `/api/v1/tokens/${issued.id}`, { token: 'admin' });
    await call('delete', '/api/v1/tokens/{id}', `/api/v1/tokens/${issued.id}`, { token: 'admin' });
  });

  it('called every route the document lists', () => {
    const listed = Object.entries(API).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method} ${path}`));
    expect(listed.filter((route) => !called.has(route))).toEqual([]);
  });
});
