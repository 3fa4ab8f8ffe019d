/**
 * Issue 19, item 6: the results-store's HTTP side against a hostile web. Cross-site
 * requests riding a login cookie, silent role changes, guessing tokens, no way to sign
 * out or revoke, missing headers, a page cache poisoned through the Host header, job
 * names that break XML, a malformed cookie taking every route down, unbounded uploads,
 * and /metrics open to anyone while the pages need a token. All against a real
 * results-store process (tokens needed for reading, behind a trusted proxy on loopback).
 */
import { once } from 'node:events';
import { request } from 'node:http';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { sampleResult, sha256Hex, spawnResultsStore, uploadBody, type ResultsStoreProcess } from '../../../test/support/results-store.js';
import { hashToken } from '../src/auth/token-service.js';
import { UPLOAD_CONTENT_TYPE } from '../src/ingest/upload-format.js';

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** XML 1.0's Char production: anything else makes a document not well-formed. */
const NOT_XML = /[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

describe('the HTTP side against a hostile web', () => {
  let nats: RunningNats;
  let rs: ResultsStoreProcess;
  let dir: string;
  const token = () => `cairn_rs_${randomBytes(32).toString('base64url')}`;
  const admin = token();
  const writer = token();
  const reader = token();
  const oddName = 'odd\x01\x08\x1b[31mname\uFFFE\x7f';
  let oddBuild: string;

  /** One request with exactly the headers given (Host, Origin, Sec-Fetch-Site and cookies included). */
  function raw(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string, chunked = false): Promise<Answer> {
    const url = new URL(rs.url);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          method,
          path,
          headers: { ...(body !== undefined && !chunked ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      if (body !== undefined) {
        if (chunked) {
          const bytes = Buffer.from(body);
          for (let i = 0; i < bytes.length; i += 64 * 1024) req.write(bytes.subarray(i, i + 64 * 1024));
        } else req.write(body);
      }
      req.end();
    });
  }
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
  const json = { 'content-type': 'application/json' };

  async function loginCookie(t: string, headers: Record<string, string> = {}): Promise<string> {
    const res = await raw('POST', '/login', { 'content-type': 'application/x-www-form-urlencoded', ...headers }, new URLSearchParams({ token: t }).toString());
    expect(res.status).toBe(303);
    return String(res.headers['set-cookie']).split(';')[0]!;
  }

  beforeAll(async () => {
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), 'cairn-http-security-'));
    const tokensFile = join(dir, 'tokens');
    await writeFile(tokensFile, `ops admin sha256:${hashToken(admin)}\nci writer sha256:${hashToken(writer)}\nviewer reader sha256:${hashToken(reader)}\n`);
    rs = await spawnResultsStore({
      CAIRN_NATS: nats.url,
      CAIRN_RESULTS_DIR: dir,
      CAIRN_RESULTS_DB: join(dir, 'results.sqlite'),
      CAIRN_RESULTS_READ: 'token',
      CAIRN_RESULTS_TOKENS_FILE: tokensFile,
      CAIRN_RESULTS_TRUSTED_PROXY: 'loopback',
      CAIRN_RESULTS_MAX_UPLOAD_BYTES: String(1024 * 1024),
    });
    // A failed build with a log, an artifact and a job name full of control characters.
    const artifact = Buffer.from('<html><script>alert(1)</script></html>');
    const result = sampleResult({
      name: oddName,
      state: 'failed',
      failure: 'step 2 failed \x02 badly',
      artifacts: [{ path: 'page.html', size: artifact.length, sha256: sha256Hex(artifact) }],
    });
    oddBuild = result.job;
    const up = await raw(
      'POST',
      '/api/v1/uploads',
      { 'content-type': UPLOAD_CONTENT_TYPE, ...bearer(writer) },
      uploadBody({ result, log: '<html><script>alert(1)</script>\n' }, [artifact]),
    );
    expect(up.status).toBe(201);
  }, 120_000);
  afterAll(async () => {
    await rs?.stop();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses cookie-authenticated state changes from another origin; bearer-token clients are fine', async () => {
    const cookie = await loginCookie(admin);
    const form = { 'content-type': 'application/x-www-form-urlencoded', cookie };
    const body = new URLSearchParams({ user: 'mallory', role: 'admin' }).toString();
    // A page on another origin (or another site, or a sibling subdomain) posting a form.
    expect((await raw('POST', '/api/v1/tokens', { ...form, origin: 'http://evil.example' }, body)).status).toBe(403);
    expect((await raw('POST', '/api/v1/tokens', { ...form, 'sec-fetch-site': 'same-site' }, body)).status).toBe(403);
    expect((await raw('POST', '/api/v1/tokens', { ...form, origin: 'null' }, body)).status).toBe(403);
    // A cookie and nothing that says where the request came from: not trusted either.
    expect((await raw('POST', '/api/v1/tokens', form, body)).status).toBe(403);
    expect((await raw('PUT', `/api/v1/builds/${oddBuild}/tags/evil`, { cookie, origin: 'http://evil.example' })).status).toBe(403);
    expect((await raw('POST', '/logout', { cookie, origin: 'http://evil.example' })).status).toBe(403);
    // Signing a victim in with the attacker's token is refused too.
    expect(
      (
        await raw(
          'POST',
          '/login',
          { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' },
          new URLSearchParams({ token: reader }).toString(),
        )
      ).status,
    ).toBe(403);

    // The dashboard's own pages, and API clients with a bearer token and no cookie.
    const sameOrigin = await raw('POST', '/api/v1/tokens', { ...json, cookie, origin: rs.url }, JSON.stringify({ user: 'pat', role: 'reader' }));
    expect(sameOrigin.status).toBe(201);
    expect(
      (await raw('POST', '/api/v1/tokens', { ...json, cookie, 'sec-fetch-site': 'same-origin' }, JSON.stringify({ user: 'pat', role: 'reader' }))).status,
    ).toBe(201);
    expect((await raw('POST', '/api/v1/tokens', { ...json, ...bearer(admin) }, JSON.stringify({ user: 'pat', role: 'reader' }))).status).toBe(201);
    expect((await raw('PUT', `/api/v1/builds/${oddBuild}/tags/fine`, bearer(writer))).status).toBe(204);
  });

  it("does not change an existing user's role unless an admin asks for that explicitly", async () => {
    const promote = await raw('POST', '/api/v1/tokens', { ...json, ...bearer(admin) }, JSON.stringify({ user: 'ci', role: 'admin' }));
    expect(promote.status).toBe(409);
    expect(promote.body).toMatch(/role/);
    // Still a writer: an admin route stays closed to ci's token.
    expect((await raw('POST', '/api/v1/tokens', { ...json, ...bearer(writer) }, JSON.stringify({ user: 'x', role: 'reader' }))).status).toBe(403);
    // Another token with the same role is fine.
    expect((await raw('POST', '/api/v1/tokens', { ...json, ...bearer(admin) }, JSON.stringify({ user: 'ci', role: 'writer' }))).status).toBe(201);
    const changed = await raw('POST', '/api/v1/tokens', { ...json, ...bearer(admin) }, JSON.stringify({ user: 'viewer', role: 'writer', changeRole: true }));
    expect(changed.status).toBe(201);
    expect(JSON.parse(changed.body)).toMatchObject({ user: 'viewer', role: 'writer' });
  });

  it('throttles failed logins and failed tokens per client address', async () => {
    const from = (ip: string) => ({ 'x-forwarded-for': ip, 'content-type': 'application/x-www-form-urlencoded' });
    const attempt = (ip: string, t: string) => raw('POST', '/login', from(ip), new URLSearchParams({ token: t }).toString());
    const started = performance.now();
    for (let i = 0; i < 10; i++) expect((await attempt('203.0.113.7', `guess-${i}`)).status).toBe(401);
    const refused = await attempt('203.0.113.7', 'guess-10');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    // Once throttled, even a right guess is not tried: the answer must not tell.
    expect((await attempt('203.0.113.7', reader)).status).toBe(429);
    expect(performance.now() - started).toBeLessThan(30_000);
    // Another address is not held up by this one.
    expect((await attempt('203.0.113.8', reader)).status).toBe(303);
    // Bearer tokens on the API count the same way.
    for (let i = 0; i < 10; i++) expect((await raw('GET', '/api/v1/builds', { 'x-forwarded-for': '203.0.113.9', ...bearer(`guess-${i}`) })).status).toBe(401);
    expect((await raw('GET', '/api/v1/builds', { 'x-forwarded-for': '203.0.113.9', ...bearer('guess-10') })).status).toBe(429);
  });

  it('signs out, and revokes a token by its ID', async () => {
    const cookie = await loginCookie(reader);
    expect((await raw('GET', '/builds', { cookie })).status).toBe(200);
    const out = await raw('POST', '/logout', { cookie, origin: rs.url });
    expect(out.status).toBe(303);
    expect(String(out.headers['set-cookie'])).toMatch(/^cairn_token=;.*Max-Age=0/);
    expect(out.headers['set-cookie']).toContainEqual(expect.stringMatching(/^cairn_role=; .*Max-Age=0/));

    const issued = JSON.parse((await raw('POST', '/api/v1/tokens', { ...json, ...bearer(admin) }, JSON.stringify({ user: 'temp', role: 'reader' }))).body) as {
      id: number;
      token: string;
    };
    expect((await raw('GET', '/api/v1/builds', bearer(issued.token))).status).toBe(200);
    expect((await raw('DELETE', `/api/v1/tokens/${issued.id}`, bearer(reader))).status).toBe(403);
    expect((await raw('DELETE', `/api/v1/tokens/${issued.id}`, bearer(admin))).status).toBe(204);
    expect((await raw('GET', '/api/v1/builds', bearer(issued.token))).status).toBe(401);
    expect((await raw('DELETE', '/api/v1/tokens/999999', bearer(admin))).status).toBe(404);
  });

  it('sends nosniff, a CSP on the badge, no X-Powered-By, and a Secure cookie only over TLS', async () => {
    const log = await raw('GET', `/builds/${oddBuild}/log.txt`, bearer(reader));
    expect(log.status).toBe(200);
    expect(log.headers['x-content-type-options']).toBe('nosniff');
    const artifact = await raw('GET', `/api/v1/builds/${oddBuild}/artifacts/page.html`, bearer(reader));
    expect(artifact.status).toBe(200);
    expect(artifact.headers['x-content-type-options']).toBe('nosniff');
    const badge = await raw('GET', `/jobs/${encodeURIComponent(oddName)}/badge.svg`, bearer(reader));
    expect(badge.status).toBe(200);
    expect(badge.headers['content-security-policy']).toMatch(/default-src 'none'/);
    for (const path of ['/healthz', '/builds', '/api/v1/builds', '/login', '/nowhere']) {
      expect((await raw('GET', path, bearer(reader))).headers['x-powered-by'], path).toBeUndefined();
    }
    const plain = await raw('POST', '/login', { 'content-type': 'application/x-www-form-urlencoded' }, new URLSearchParams({ token: reader }).toString());
    expect(String(plain.headers['set-cookie'])).toMatch(/HttpOnly/);
    expect(String(plain.headers['set-cookie'])).toMatch(/SameSite=(Lax|Strict)/);
    expect(String(plain.headers['set-cookie'])).not.toMatch(/Secure/);
    // The role (an earlier case made this user a writer), for the page's script to show
    // the links it allows: readable, so no HttpOnly; only a hint.
    expect(plain.headers['set-cookie']).toContainEqual(expect.stringMatching(/^cairn_role=(reader|writer); Path=\/; SameSite=Strict; Max-Age=\d+$/));
    const shared = await raw('GET', '/builds', bearer(reader));
    expect(shared.body).toContain('<li data-needs="operator" hidden><a href="/audit">Audit log</a></li>');
    // Behind the trusted proxy, which says the client came over TLS.
    const tls = await raw(
      'POST',
      '/login',
      { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-proto': 'https' },
      new URLSearchParams({ token: reader }).toString(),
    );
    expect(String(tls.headers['set-cookie'])).toMatch(/; Secure/);
  });

  it('does not serve a page cached for another Host', async () => {
    const path = `/jobs/${encodeURIComponent(oddName)}`;
    const poisoned = await raw('GET', path, { ...bearer(reader), host: 'evil.example' });
    expect(poisoned.status).toBe(200);
    expect(poisoned.body).toContain('http://evil.example');
    const honest = await raw('GET', path, bearer(reader));
    expect(honest.status).toBe(200);
    expect(honest.body).not.toContain('evil.example');
  });

  it('keeps the Atom feed and the badge well-formed XML whatever a job is called', async () => {
    const feed = await raw('GET', '/failures.atom', bearer(reader));
    expect(feed.status).toBe(200);
    expect(feed.body).toContain('odd');
    expect(feed.body).not.toMatch(NOT_XML);
    const badge = await raw('GET', `/jobs/${encodeURIComponent(oddName)}/badge.svg`, bearer(reader));
    expect(badge.body).toContain('odd');
    expect(badge.body).not.toMatch(NOT_XML);
  });

  it('answers 400, not 500, to a malformed cookie', async () => {
    for (const path of ['/builds', '/api/v1/builds', `/builds/${oddBuild}`, '/metrics']) {
      expect((await raw('GET', path, { cookie: 'cairn_token=%E0%A4%A' })).status, path).toBe(400);
    }
    expect((await raw('GET', '/login', { cookie: 'cairn_token=%E0%A4%A' })).status).toBe(200);
  });

  it('refuses an upload over the size cap with 413 and keeps nothing of it', async () => {
    const big = Buffer.alloc(1536 * 1024, 7);
    const result = sampleResult({ name: 'too-big', artifacts: [{ path: 'big.bin', size: big.length, sha256: sha256Hex(big) }] });
    const body = uploadBody({ result }, [big]);
    const declared = await raw('POST', '/api/v1/uploads', { 'content-type': UPLOAD_CONTENT_TYPE, ...bearer(writer) }, body);
    expect(declared.status).toBe(413);
    // Without a Content-Length the count is kept as the bytes arrive.
    const streamed = await raw(
      'POST',
      '/api/v1/uploads',
      { 'content-type': UPLOAD_CONTENT_TYPE, 'transfer-encoding': 'chunked', ...bearer(writer) },
      body,
      true,
    );
    expect(streamed.status).toBe(413);
    expect((await raw('GET', `/api/v1/builds/${result.job}`, bearer(reader))).status).toBe(404);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('lets a slow client read the 413 of a refused upload, not a reset', async () => {
    // A client that writes the whole body before it reads: closing the socket with its
    // bytes unread makes the server's kernel answer with RST, which throws away the 413.
    const url = new URL(rs.url);
    const body = Buffer.alloc(8 * 1024 * 1024, 3);
    const socket = connect(Number(url.port), url.hostname);
    let failed: string | undefined;
    socket.on('error', (e: NodeJS.ErrnoException) => (failed ??= e.code ?? e.message));
    await once(socket, 'connect');
    socket.pause();
    socket.write(
      `POST /api/v1/uploads HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: ${UPLOAD_CONTENT_TYPE}\r\nAuthorization: Bearer ${writer}\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    socket.write(body);
    await new Promise((r) => setTimeout(r, 1000));
    const received: Buffer[] = [];
    const ended = new Promise<string>((resolve) => {
      if (failed) resolve(failed);
      socket.on('data', (c: Buffer) => {
        received.push(c);
        if (/\r\n\r\n[\s\S]*\}/.test(Buffer.concat(received).toString('latin1'))) resolve('answered');
      });
      socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      socket.on('close', () => resolve('closed'));
    });
    socket.resume();
    expect(await ended).toBe('answered');
    expect(Buffer.concat(received).toString('latin1')).toMatch(/^HTTP\/1\.1 413 /);
    socket.destroy();
  });

  it('reads no more than a bound of a refused body: a client that keeps sending is cut off, after the 413', async () => {
    const url = new URL(rs.url);
    const outcome = await new Promise<{ status?: number; sent: number }>((resolve) => {
      let status: number | undefined;
      let sent = 0;
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          method: 'POST',
          path: '/api/v1/uploads',
          headers: { 'content-type': UPLOAD_CONTENT_TYPE, 'transfer-encoding': 'chunked', ...bearer(writer) },
        },
        (res) => {
          status = res.statusCode;
          res.resume();
        },
      );
      const chunk = Buffer.alloc(1024 * 1024, 1);
      const pump = () => {
        // Far past the cap and the linger bound: only the server's cut stops this.
        while (sent < 1024 * 1024 * 1024 && !req.destroyed) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      req.on('error', () => resolve({ status, sent }));
      req.on('close', () => resolve({ status, sent }));
      pump();
    });
    expect(outcome.status).toBe(413);
    expect(outcome.sent).toBeLessThan(512 * 1024 * 1024);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('keeps /metrics behind a token when reading needs one', async () => {
    expect((await raw('GET', '/metrics')).status).toBe(401);
    expect((await raw('GET', '/metrics', bearer('not-a-token'))).status).toBe(401);
    const metrics = await raw('GET', '/metrics', bearer(reader));
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('cairn_results_');
    expect((await raw('GET', '/healthz')).status).toBe(200);
  });
});
