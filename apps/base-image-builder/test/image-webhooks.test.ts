/**
 * The webhook settings are checked when the service starts, each error naming the
 * variable. Deliveries are kept in the image records (a real NATS, the cairn-base-images
 * bucket) until a real receiver took them: a delivery that failed, or was never tried,
 * is made by the next process after a restart, and is never made by two live replicas.
 * (Delivery from the running service, on a real publish and a real failed build, is
 * tested in base-image-builder.test.ts.)
 */
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import type { PendingDelivery } from '../src/core/image-record.js';
import { ImageRecords } from '../src/image-records.js';
import { failedEvent, ImageWebhooks, publishedEvents, type WebhookOptions } from '../src/image-webhooks.js';

const SECRET = 'a-secret-of-twenty-four-c';
let dir: string;
let secretFile: string;
let nats: RunningNats;
let nc: NatsConnection;
let records: ImageRecords;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cairn-webhooks-'));
  secretFile = join(dir, 'secret');
  await writeFile(secretFile, `${SECRET}\n`);
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  records = await ImageRecords.open(nc, () => undefined);
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

const fromEnv = (env: NodeJS.ProcessEnv, log: (m: string) => void = () => undefined) => ImageWebhooks.fromEnv(env, 'replica-a', log);

/** A receiver that answers `status` (a function of the attempt), keeping every request it got. */
interface Received {
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
}
async function receiver(status: () => number): Promise<{ url: string; got: Received[]; server: Server }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      got.push({ body, headers: req.headers });
      res.writeHead(status()).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks?token=t0k`, got, server };
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const IMAGE = { name: 'box:1', repository: 'box', tags: ['1', 'latest'] };
const DIGEST = `sha256:${'b'.repeat(64)}`;
const OLD = `sha256:${'a'.repeat(64)}`;

/** One process's webhooks, as fromEnv makes them but with short waits. */
const hooks = (url: string, log: string[], options: Partial<WebhookOptions> = {}) =>
  new ImageWebhooks([new URL(url)], SECRET, {
    retries: 5,
    backoff: { firstMs: 30, maxMs: 60 },
    timeoutMs: 2000,
    replica: 'replica-a',
    staleMs: 60_000,
    log: (m) => void log.push(m),
    ...options,
  });

/** What the rebuilder does on a publish: the deliveries stored with it, then sent. */
async function storeWith(name: string, deliveries: PendingDelivery[]): Promise<PendingDelivery[]> {
  const written = await records.update(name, (r) => ({ ...r, webhooks: [...(r.webhooks ?? []), ...deliveries] }));
  return [...written!.webhooks!];
}
const pending = async (name: string) => (await records.get(name)).record.webhooks;

describe('webhooks on a new digest: settings', () => {
  it('none without CAIRN_IMAGE_WEBHOOKS', async () => {
    expect(await fromEnv({})).toBeUndefined();
    expect(await fromEnv({ CAIRN_IMAGE_WEBHOOKS: ' , ' })).toBeUndefined();
  });

  it('refuses what is not an http(s) URL, naming the entry', async () => {
    await expect(fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'http://a.example/x, not a url', CAIRN_IMAGE_WEBHOOK_SECRET_FILE: secretFile })).rejects.toThrow(
      /CAIRN_IMAGE_WEBHOOKS: entry 2 is not a URL/,
    );
    await expect(fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'ftp://a.example/x', CAIRN_IMAGE_WEBHOOK_SECRET_FILE: secretFile })).rejects.toThrow(
      /entry 1 \(ftp:\/\/a\.example\/x\) is not an http or https URL/,
    );
    const withUser = await fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'http://user:pw@a.example/x', CAIRN_IMAGE_WEBHOOK_SECRET_FILE: secretFile }).catch((e: Error) => e);
    expect(String(withUser)).toMatch(/entry 1 \(http:\/\/a\.example\/x\) has a user or password/);
    expect(String(withUser)).not.toContain('pw');
  });

  it('needs a readable secret of 16 characters or more, and never shows it', async () => {
    await expect(fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'http://a.example/x' })).rejects.toThrow(/CAIRN_IMAGE_WEBHOOK_SECRET_FILE is not/);
    await expect(fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'http://a.example/x', CAIRN_IMAGE_WEBHOOK_SECRET_FILE: join(dir, 'absent') })).rejects.toThrow(
      /CAIRN_IMAGE_WEBHOOK_SECRET_FILE .*absent: .*ENOENT/,
    );
    await writeFile(join(dir, 'short'), 'short-one');
    const short = await fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'http://a.example/x', CAIRN_IMAGE_WEBHOOK_SECRET_FILE: join(dir, 'short') }).catch((e: Error) => e);
    expect(String(short)).toMatch(/shorter than 16 characters/);
    expect(String(short)).not.toContain('short-one');
  });

  it('a receiver that never answers holds nothing past stop(); the delivery stays stored; its URL is logged without its query', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const log: string[] = [];
    try {
      const webhooks = await fromEnv(
        { CAIRN_IMAGE_WEBHOOKS: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/in?token=t0k`, CAIRN_IMAGE_WEBHOOK_SECRET_FILE: secretFile },
        (m) => log.push(m),
      );
      const stored = await storeWith(
        'silent:1',
        webhooks!.outbox(publishedEvents({ name: 'silent:1', repository: 'silent', tags: ['1'] }, DIGEST, undefined, 'j-1', 1)),
      );
      webhooks!.deliver(records, 'silent:1', stored);
      await until('an attempt begun', async () => ((await pending('silent:1'))?.[0]?.attempts === 1 ? true : undefined));
      await webhooks!.stop();
      expect(log.at(-1)).toMatch(
        /^webhook http:\/\/127\.0\.0\.1:\d+\/in: silent:1 1 -> sha256:b+: attempt 1 failed .*the service is stopping: left for its next start$/,
      );
      expect(log.join('\n')).not.toMatch(/t0k|a-secret/);
      expect(await pending('silent:1')).toEqual([{ ...stored[0], attempts: 1, holder: 'replica-a', triedAt: expect.any(Number) }]);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });
});

describe('webhooks: events kept until delivered', () => {
  it('a failed build is told as image.failed, naming the reason, the failures, the retry and the digest still published', () => {
    const failures = { inputs: `sha256:${'c'.repeat(64)}`, count: 2, last: 'job j-9 failed: exit 3', at: 5, retryAt: 900, job: 'j-9' };
    expect(failedEvent(IMAGE, failures, OLD)).toEqual({
      event: 'image.failed',
      image: 'box:1',
      repository: 'box',
      tags: ['1', 'latest'],
      reason: 'job j-9 failed: exit 3',
      failures: 2,
      retryAt: 900,
      job: 'j-9',
      published: OLD,
      inputs: failures.inputs,
      at: 5,
    });
    // Retries used up, never published, no job reached: those fields are absent, not empty.
    const { retryAt: _none, job: _nojob, ...last } = failures;
    expect(Object.keys(failedEvent(IMAGE, last, undefined))).toEqual(['event', 'image', 'repository', 'tags', 'reason', 'failures', 'inputs', 'at']);
  });

  it('a delivery that failed survives a restart: the next process makes it, same id, signed, then removes it', async () => {
    let up = false;
    const r = await receiver(() => (up ? 204 : 503));
    const log: string[] = [];
    try {
      // Waits long enough that it is stopped well before its retries are used up.
      const first = hooks(r.url, log, { backoff: { firstMs: 200, maxMs: 400 } });
      const stored = await storeWith('box:1', first.outbox([failedEvent(IMAGE, { inputs: OLD, count: 1, last: 'job j-1 failed', at: 7, job: 'j-1' }, OLD)]));
      first.deliver(records, 'box:1', stored);
      await until('two refused attempts', () => (r.got.length >= 2 ? true : undefined));
      await first.stop(); // the process ends (SIGTERM); kill -9 leaves the record the same
      const left = await pending('box:1');
      expect(left).toHaveLength(1);
      expect(left![0]!.attempts).toBeGreaterThanOrEqual(2);
      const refused = r.got.length;

      up = true;
      const second = hooks(r.url, log);
      second.deliver(records, 'box:1', left!);
      await until('the delivery removed from the record', async () => ((await pending('box:1')) === undefined ? true : undefined));
      await second.stop();
      expect(r.got).toHaveLength(refused + 1);
      const last = r.got.at(-1)!;
      expect(last.headers['x-cairn-event']).toBe('image.failed');
      expect(new Set(r.got.map((g) => g.headers['x-cairn-delivery']))).toEqual(new Set([stored[0]!.id]));
      expect(last.body).toBe(stored[0]!.body);
      expect(last.headers['x-cairn-signature']).toBe(`sha256=${createHmac('sha256', SECRET).update(last.body).digest('hex')}`);
      expect(JSON.parse(last.body)).toMatchObject({ event: 'image.failed', image: 'box:1', reason: 'job j-1 failed', failures: 1, job: 'j-1', published: OLD });
      expect(log.join('\n')).toMatch(/webhook http:\/\/127\.0\.0\.1:\d+\/hooks: box:1 failed \(1\): attempt 1 failed \(HTTP 503\); trying again/);
      expect(log.join('\n')).not.toContain('t0k');
    } finally {
      r.server.close();
    }
  });

  it('a delivery stored but never tried (the process died right after the publish) is made by the next one, one request per tag', async () => {
    const r = await receiver(() => 200);
    const log: string[] = [];
    try {
      const stored = await storeWith('box:2', hooks(r.url, log).outbox(publishedEvents(IMAGE, DIGEST, OLD, 'j-2', 11)));
      expect(stored).toHaveLength(2);
      const next = hooks(r.url, log);
      next.deliver(records, 'box:2', (await pending('box:2'))!);
      await until('both delivered', async () => ((await pending('box:2')) === undefined ? true : undefined));
      await next.stop();
      expect(
        r.got
          .map((g) => JSON.parse(g.body) as { tag: string; previous: string })
          .map((e) => `${e.tag} ${e.previous}`)
          .sort(),
      ).toEqual([`1 ${OLD}`, `latest ${OLD}`]);
      expect(r.got.every((g) => g.headers['x-cairn-event'] === 'image.published')).toBe(true);
    } finally {
      r.server.close();
    }
  });

  it('a record that cannot be written while NATS is away is written once it is back: the delivery goes on without another pass', async () => {
    let answers = 0;
    const r = await receiver(() => (++answers === 1 ? 503 : 204));
    const log: string[] = [];
    try {
      const webhooks = hooks(r.url, log, { backoff: { firstMs: 300, maxMs: 600 } });
      const stored = await storeWith('box:3', webhooks.outbox([failedEvent(IMAGE, { inputs: OLD, count: 1, last: 'job j-3 failed', at: 9, job: 'j-3' }, OLD)]));
      webhooks.deliver(records, 'box:3', stored);
      await until('the first, refused attempt', () => (r.got.length >= 1 ? true : undefined));
      // Away for longer than a JetStream request waits (5 s): the next write of the record fails.
      await nats.restart(7000);
      const gone = async () => ((await pending('box:3').catch(() => 'unreadable')) === undefined ? true : undefined);
      await until('the delivery made and removed from the record', gone, 40_000);
      await webhooks.stop();
      expect(r.got).toHaveLength(2);
      expect(new Set(r.got.map((g) => g.headers['x-cairn-delivery']))).toEqual(new Set([stored[0]!.id]));
      expect(log.join('\n')).toMatch(/webhook http:\/\/127\.0\.0\.1:\d+\/hooks: box:1 failed \(1\): cannot write its record \(.+\); trying again until it can/);
    } finally {
      r.server.close();
    }
  }, 60_000);

  it("another live replica's delivery is left to it; a gone replica's is taken over", async () => {
    const r = await receiver(() => 204);
    const log: string[] = [];
    try {
      const a = hooks(r.url, log);
      const [fresh] = await storeWith('box:3', a.outbox(publishedEvents({ ...IMAGE, tags: ['1'] }, DIGEST, OLD, 'j-3', 12)));
      await records.update('box:3', (rec) => ({ ...rec, webhooks: [{ ...fresh!, attempts: 1, holder: 'replica-b', triedAt: Date.now() }] }));
      const other = hooks(r.url, log, { staleMs: 1500 });
      other.deliver(records, 'box:3', (await pending('box:3'))!);
      await new Promise((res) => setTimeout(res, 300));
      expect(r.got).toHaveLength(0);
      expect((await pending('box:3'))![0]!.holder).toBe('replica-b');
      // replica-b said nothing for longer than staleMs: gone.
      await new Promise((res) => setTimeout(res, 1300));
      other.deliver(records, 'box:3', (await pending('box:3'))!);
      await until('taken over and delivered', async () => ((await pending('box:3')) === undefined ? true : undefined));
      await other.stop();
      expect(r.got).toHaveLength(1);
    } finally {
      r.server.close();
    }
  });

  it('gives up after its retries, with a log line; a URL no longer configured is dropped', async () => {
    const r = await receiver(() => 500);
    const log: string[] = [];
    try {
      const webhooks = hooks(r.url, log, { retries: 2 });
      webhooks.deliver(records, 'box:4', await storeWith('box:4', webhooks.outbox(publishedEvents({ ...IMAGE, tags: ['1'] }, DIGEST, undefined, 'j-4', 13))));
      await until('given up', async () => ((await pending('box:4')) === undefined ? true : undefined));
      expect(r.got).toHaveLength(3);
      expect(log.at(-1)).toMatch(/: box:1 1 -> sha256:b+: not delivered \(HTTP 500\) after 3 attempts$/);

      const gone = await storeWith(
        'box:5',
        hooks('http://127.0.0.1:1/old', log).outbox(publishedEvents({ ...IMAGE, tags: ['1'] }, DIGEST, undefined, 'j-5', 14)),
      );
      webhooks.deliver(records, 'box:5', gone);
      await until('dropped', async () => ((await pending('box:5')) === undefined ? true : undefined));
      await webhooks.stop();
      expect(r.got).toHaveLength(3);
      expect(log.at(-1)).toBe(
        'webhook http://127.0.0.1:1/old: box:1 1 -> sha256:' + 'b'.repeat(64) + ': dropped, its URL is no longer in CAIRN_IMAGE_WEBHOOKS',
      );
    } finally {
      r.server.close();
    }
  });
});
