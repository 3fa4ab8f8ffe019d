import { request } from 'node:http';
import { chmod, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { sampleResult, sha256Hex, startResultsStore, uploadBody, type ResultsStoreUnderTest } from '../../../test/support/results-store.js';
import { TokenService } from '../src/auth/token-service.js';
import { UploadHooks } from '../src/hooks/upload-hooks.js';
import { asBuildId, asSha256 } from '../src/ids.js';
import { UPLOAD_CONTENT_TYPE } from '../src/ingest/upload-format.js';
import { LogIndexer } from '../src/log-index.js';
import { BuildQueries } from '../src/queries/build-queries.js';
import type { LogPiece } from '../src/view/log-sections.js';

describe('uploading results made outside the cluster', () => {
  let nats: RunningNats;
  let rs: ResultsStoreUnderTest;
  let writer: string;
  let reader: string;
  let hooksOut: string;
  let queries: BuildQueries;

  const post = (body: Buffer, token: string | null = writer, type = UPLOAD_CONTENT_TYPE) =>
    fetch(`${rs.url}/api/v1/uploads`, {
      method: 'POST',
      body: new Uint8Array(body),
      headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });

  async function nothingStored(job: string, blobs: Buffer[]): Promise<void> {
    expect(await queries.getBuild(asBuildId(job))).toBeUndefined();
    for (const b of blobs) expect(await rs.store.blobs.size(asSha256(sha256Hex(b)))).toBeUndefined();
    expect(await readdir(join(rs.dataDir, 'tmp'))).toEqual([]);
  }

  beforeAll(async () => {
    nats = await startNats();
    const hooks = join(tmpdir(), `cairn-hooks-${process.pid}-${Date.now()}`);
    await mkdir(hooks, { recursive: true });
    hooksOut = join(hooks, 'out');
    await writeFile(join(hooks, '10-record'), `#!/bin/sh\necho "$@ $CAIRN_STATE $CAIRN_CLIENT $CAIRN_BUILD_URL" >> ${hooksOut}\necho recorded "$1"\n`);
    await writeFile(join(hooks, '20-fail'), '#!/bin/sh\necho "this hook fails" >&2\nexit 3\n');
    await writeFile(join(hooks, '30-hang'), '#!/bin/sh\nsleep 30\n');
    await writeFile(join(hooks, 'README'), 'not executable, not run\n');
    for (const h of ['10-record', '20-fail', '30-hang']) await chmod(join(hooks, h), 0o755);
    rs = await startResultsStore({
      natsUrl: nats.url,
      env: { CAIRN_RESULTS_HOOKS: hooks, CAIRN_RESULTS_HOOK_TIMEOUT_MS: '500', CAIRN_RESULTS_PUBLIC_URL: 'https://results.example' },
    });
    const tokens = new TokenService(rs.store.ds);
    writer = (await tokens.issue('ci', 'writer')).token;
    reader = (await tokens.issue('viewer', 'reader')).token;
    queries = new BuildQueries(rs.store.ds);
  });
  afterAll(async () => {
    await rs?.close();
    await nats?.stop();
  });

  it('stores an upload with its artifacts and log, answers 201 once stored, then runs the hooks', async () => {
    const a = Buffer.from('first artifact');
    const b = Buffer.alloc(200_000, 7);
    const result = sampleResult({
      name: 'uploaded',
      artifacts: [
        { path: 'dist/a.txt', size: a.length, sha256: sha256Hex(a) },
        { path: 'dist/b.bin', size: b.length, sha256: sha256Hex(b) },
      ],
    });
    const res = await post(uploadBody({ result, log: 'built outside\n' }, [a, b]));
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ build: result.job, url: `https://results.example/builds/${result.job}` });
    const stored = await queries.getBuild(asBuildId(result.job));
    expect(stored?.source).toBe('upload');
    expect(stored?.logSha256).toBe(sha256Hex('built outside\n'));
    expect(stored?.logIndex).toBeNull(); // no index given: numbered lines, no times or folding
    const download = await fetch(`${rs.url}/api/v1/builds/${result.job}/artifacts/dist/b.bin`);
    expect(download.headers.get('x-checksum-sha256')).toBe(sha256Hex(b));
    expect(sha256Hex(Buffer.from(await download.arrayBuffer()))).toBe(sha256Hex(b));

    await expect.poll(() => readFile(hooksOut, 'utf8').catch(() => ''), { timeout: 10_000 }).toContain(result.job);
    const line = (await readFile(hooksOut, 'utf8')).trim();
    expect(line).toBe(`${result.job} uploaded succeeded linux-x86_64 linux/amd64 succeeded alice https://results.example/builds/${result.job}`);
  });

  it('runs every executable hook with a timeout; failing or hanging hooks lose nothing', async () => {
    const logged: string[] = [];
    const hooks = new UploadHooks(
      { hooksDir: join(hooksOut, '..'), hookTimeoutMs: 500 },
      { log: (m: string) => logged.push(m), warn: (m: string) => logged.push(m), error: (m: string) => logged.push(m) },
    );
    const started = Date.now();
    const runs = await hooks.afterStored({
      build: 'j-hooktest1',
      job: 'x',
      state: 'failed',
      pool: 'p',
      platform: 'q',
      client: 'c',
      worker: 'w',
      finishedAt: 1,
      durationMs: 2,
      artifacts: 0,
    });
    expect(runs.map((r) => [r.hook.split('/').pop(), r.outcome])).toEqual([
      ['10-record', 'ok'],
      ['20-fail', 'failed'],
      ['30-hang', 'timeout'],
    ]);
    expect(runs[0]!.output).toBe('recorded j-hooktest1');
    expect(runs[1]!.output).toBe('this hook fails');
    expect(runs[1]!.exitCode).toBe(3);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(logged.join('\n')).toContain('"outcome":"timeout"');
  });

  it('refuses a missing or bad token (401) and a reader token (403), storing nothing', async () => {
    const a = Buffer.from('unauthorised');
    const result = sampleResult({ artifacts: [{ path: 'a', size: a.length, sha256: sha256Hex(a) }] });
    const body = uploadBody({ result }, [a]);
    const none = await post(body, null);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { message: string }).message).toContain('a token is required');
    const bad = await post(body, 'cairn_rs_not-a-real-token');
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { message: string }).message).toContain('not valid');
    const weak = await post(body, reader);
    expect(weak.status).toBe(403);
    expect(((await weak.json()) as { message: string }).message).toContain('role reader');
    await nothingStored(result.job, [a]);
  });

  it.each([['../etc/passwd'], ['dist/../../x'], ['/etc/passwd'], ['a\u0000b'], ['a\\..\\b'], ['']])(
    'refuses the artifact path %j with nothing stored',
    async (path) => {
      const ok = Buffer.from(`fine ${path}`);
      const evil = Buffer.from('evil');
      const result = sampleResult({
        artifacts: [
          { path: 'fine', size: ok.length, sha256: sha256Hex(ok) },
          { path, size: evil.length, sha256: sha256Hex(evil) },
        ],
      });
      const res = await post(uploadBody({ result }, [ok, evil]));
      expect(res.status).toBe(422);
      expect(((await res.json()) as { message: string }).message).toMatch(/artifact path/);
      await nothingStored(result.job, [ok, evil]);
    },
  );

  it('refuses a body that ends before the declared bytes, with nothing stored', async () => {
    const a = Buffer.from('the whole of the first artifact');
    const b = Buffer.alloc(50_000, 1);
    const result = sampleResult({
      artifacts: [
        { path: 'a', size: a.length, sha256: sha256Hex(a) },
        { path: 'b', size: b.length, sha256: sha256Hex(b) },
      ],
    });
    const full = uploadBody({ result }, [a, b]);
    const res = await post(full.subarray(0, full.length - 1000));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain('1000 bytes short');
    await nothingStored(result.job, [a, b]);
  });

  it('stores nothing when the connection is cut in the middle of the body', async () => {
    const a = Buffer.alloc(2_000_000, 3);
    const result = sampleResult({ artifacts: [{ path: 'big', size: a.length, sha256: sha256Hex(a) }] });
    const full = uploadBody({ result }, [a]);
    const url = new URL(`${rs.url}/api/v1/uploads`);
    await new Promise<void>((resolve) => {
      const req = request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { 'content-type': UPLOAD_CONTENT_TYPE, 'content-length': full.length, authorization: `Bearer ${writer}` },
      });
      req.on('error', () => resolve());
      req.write(full.subarray(0, 1_000_000), () => setTimeout(() => (req.destroy(), resolve()), 200));
    });
    await new Promise((r) => setTimeout(r, 500));
    await nothingStored(result.job, [a]);
  });

  it('refuses bytes that do not match the declared SHA-256 or size, with nothing stored', async () => {
    const a = Buffer.from('declared');
    const lie = Buffer.from('DECLARED');
    const result = sampleResult({ artifacts: [{ path: 'a', size: a.length, sha256: sha256Hex(a) }] });
    const hash = await post(uploadBody({ result }, [lie]));
    expect(hash.status).toBe(422);
    expect(((await hash.json()) as { message: string }).message).toContain(`SHA-256 is ${sha256Hex(lie)}`);
    const longer = await post(uploadBody({ result }, [a, Buffer.from('extra')]));
    expect(longer.status).toBe(400);
    expect(((await longer.json()) as { message: string }).message).toContain('unexpected bytes');
    await nothingStored(result.job, [a, lie]);
  });

  it('refuses a manifest that is not a BuildResult, naming the field', async () => {
    const res = await post(Buffer.from('{"result":{"job":"j-12345678","name":1}}\n'));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/^upload manifest: result\.name: /);
    const type = await post(Buffer.from('x'), writer, 'text/plain');
    expect(type.status).toBe(415);
  });

  it('keeps the index an upload gives its log: the build page folds the log by step and shows its times', async () => {
    const t0 = Date.UTC(2026, 0, 2, 3, 4, 5, 600);
    const pieces: [LogPiece, number][] = [
      [{ text: '', step: { t: 'started', heading: '(from busybox)', stage: '' } }, t0],
      [{ text: '(from busybox)\n' }, t0],
      [{ text: '', step: { t: 'finished', stage: '', id: 'a'.repeat(64), cached: true, ms: 3 } }, t0 + 3],
      [{ text: '', step: { t: 'started', heading: '/: (run (shell "make"))', stage: '' } }, t0 + 5],
      [{ text: '/: (run (shell "make"))\ncompiling\n' }, t0 + 5],
      [{ text: 'linked\n' }, t0 + 1500],
      [{ text: '', step: { t: 'finished', stage: '', id: 'b'.repeat(64), cached: false, ms: 1495 } }, t0 + 1500],
    ];
    // What the results-store writes of a log it reads from the stream, made the same way.
    const indexer = new LogIndexer();
    for (const [piece, at] of pieces) indexer.add(piece, at);
    const log = pieces.map(([piece]) => piece.text).join('');
    const result = sampleResult({ name: 'uploaded-with-index' });
    const res = await post(uploadBody({ result, log, logIndex: JSON.parse(indexer.encode()) as unknown }, []));
    expect(res.status).toBe(201);
    expect((await queries.getBuild(asBuildId(result.job)))?.logIndex).toBe(indexer.encode());
    const page = await (await fetch(`${rs.url}/builds/${result.job}`)).text();
    expect(page.match(/<details class="step[^"]*"/g)).toEqual(['<details class="step cached"', '<details class="step"']);
    expect(page).toContain('<span class="hit">cache hit</span>');
    expect(page).toContain('data-ts="03:04:05.600"'); // the heading of the first step, when it was written
    expect(page).toContain('data-ts="03:04:07.100"'); // "linked", 1.5 s later
  });

  it('refuses a log index that does not fit its log, or has no log (422), or is malformed (400), storing nothing', async () => {
    const result = sampleResult({ name: 'bad-index' });
    const past = await post(uploadBody({ result, log: 'short\n', logIndex: { v: 1, t: [0, 1, 100, 1], s: [] } }, []));
    expect(past.status).toBe(422);
    expect(((await past.json()) as { message: string }).message).toBe(
      `upload of ${result.job}: the log index places something at byte 100, out of order or past the log's 6 bytes`,
    );
    const alone = await post(uploadBody({ result, logIndex: { v: 1, t: [], s: [] } }, []));
    expect(alone.status).toBe(422);
    expect(((await alone.json()) as { message: string }).message).toBe(`upload of ${result.job}: logIndex without a log`);
    const malformed = await post(uploadBody({ result, log: 'x\n', logIndex: { v: 2 } }, []));
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { message: string }).message).toMatch(/^upload manifest: logIndex\.v: /);
    await nothingStored(result.job, [Buffer.from('short\n'), Buffer.from('x\n')]);
  });

  it('answers 409 for a build already stored and changes nothing', async () => {
    const result = sampleResult({ name: 'dupe' });
    expect((await post(uploadBody({ result }, []))).status).toBe(201);
    const again = await post(uploadBody({ result: { ...result, state: 'failed' } }, []));
    expect(again.status).toBe(409);
    expect((await queries.getBuild(asBuildId(result.job)))?.state).toBe('succeeded');
  });

  it('never writes a token to its log', async () => {
    // The service logs through Nest's console logger; capture what it printed during these uploads.
    const lines: string[] = [];
    const original = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      lines.push(String(chunk));
      return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
    try {
      await post(uploadBody({ result: sampleResult() }, []), writer);
      await post(uploadBody({ result: sampleResult() }, []), reader);
    } finally {
      process.stdout.write = original;
    }
    expect(lines.join('')).toContain('upload');
    expect(lines.join('')).not.toContain(writer);
    expect(lines.join('')).not.toContain(reader);
  });
});
