/**
 * The NATS permissions that tools/nats-config.mjs writes, against a real nats-server
 * started with its config: each role can do its own flows and nothing of another
 * identity's. NATS answers a forbidden publish or subscribe asynchronously, with an
 * -ERR on the connection; the client reports it as a status event, so every refusal here
 * is asserted twice: the violation was reported, and nothing was delivered.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  answer,
  buckets,
  call,
  connectBus,
  blobInfo,
  blobStores,
  ensureJetStream,
  ok,
  openBucket,
  putBlob,
  readBlob,
  streams,
  subjects,
  type BlobRef,
} from '@cairn/contracts';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Empty, headers, PermissionViolationError, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { startNats, type RunningNats } from '../support/nats.js';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;
const USERS = ['--client', 'alice', '--client', 'bob', '--worker', 'w1', '--worker', 'w2', '--admin', 'ops', '--service', 'svc'];

interface Identity {
  readonly name: string;
  readonly nc: NatsConnection;
  /** Permission violations the server reported on this connection, in order. */
  readonly violations: PermissionViolationError[];
}

let work: string;
let configFile: string;
let passwordsDir: string;
let nats: RunningNats;
const identities: Identity[] = [];
let svc: Identity;
let alice: Identity;
let bob: Identity;
let w1: Identity;
let ops: Identity;

const password = async (name: string) => (await readFile(join(passwordsDir, `${name}.password`), 'utf8')).trim();

/** Connects as `name` with its password and, unless a service, its own inbox prefix. */
async function connectAs(name: string, role: 'service' | 'other' = 'other'): Promise<Identity> {
  const nc = await connectBus({
    servers: nats.url,
    name: `permissions-test-${name}`,
    user: name,
    pass: await password(name),
    ...(role === 'service' ? {} : { inboxPrefix: `_INBOX_${name}` }),
  });
  const identity: Identity = { name, nc, violations: [] };
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'error' && status.error instanceof PermissionViolationError) identity.violations.push(status.error);
    }
  })();
  identities.push(identity);
  return identity;
}

/** Waits until the server has reported `operation` on `subject` as a violation for `who`. */
async function violated(who: Identity, operation: 'publish' | 'subscription', subject: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!who.violations.some((v) => v.operation === operation && v.subject === subject)) {
    if (Date.now() > deadline) {
      const seen = who.violations.map((v) => `${v.operation} ${v.subject}`).join(', ') || 'none';
      throw new Error(`${who.name}: no ${operation} violation on ${subject} (saw: ${seen})`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Collects what a subscription delivers. A refused subscription calls back once with the
 * violation and no message: that is not a delivery.
 */
function into(messages: Msg[]): (err: Error | null, msg: Msg) => void {
  return (err, msg) => {
    if (err === null) messages.push(msg);
  };
}

/** Messages on `subject` as the service sees them, to prove what did and did not arrive. */
async function watch(subject: string): Promise<{ messages: Msg[]; stop(): void }> {
  const messages: Msg[] = [];
  const sub = svc.nc.subscribe(subject, { callback: into(messages) });
  await svc.nc.flush();
  return { messages, stop: () => sub.unsubscribe() };
}

/** Round trips on both connections, so whatever was going to arrive has arrived. */
async function settle(...who: Identity[]): Promise<void> {
  for (const w of [...who, svc]) await w.nc.flush();
  await new Promise((r) => setTimeout(r, 100));
  await svc.nc.flush();
}

const CHUNK = 128 * 1024;
async function chunksOf(nc: NatsConnection, ref: BlobRef): Promise<Buffer[]> {
  const blob = await readBlob(nc, ref);
  if (blob === undefined) throw new Error(`no blob ${ref.sha256}`);
  const parts: Buffer[] = [];
  for await (const part of blob.bytes) parts.push(Buffer.from(part));
  return parts;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cairn-permissions-'));
  configFile = join(work, 'nats.conf');
  passwordsDir = join(work, 'passwords');
  await run(process.execPath, ['tools/nats-config.mjs', ...USERS, '--out', configFile, '--passwords-dir', passwordsDir], { cwd: ROOT });
  nats = await startNats({ config: await readFile(configFile, 'utf8') });
  svc = await connectAs('svc', 'service');
  alice = await connectAs('alice');
  bob = await connectAs('bob');
  w1 = await connectAs('w1');
  ops = await connectAs('ops');
}, 60_000);

afterAll(async () => {
  for (const { nc } of identities) await nc.close().catch(() => undefined);
  await nats?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('the generated config', () => {
  it('holds bcrypt hashes only; each password is alone in a 0600 file', async () => {
    const config = await readFile(configFile, 'utf8');
    for (const name of ['alice', 'bob', 'w1', 'w2', 'ops', 'svc']) {
      const file = join(passwordsDir, `${name}.password`);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect(config).not.toContain(await password(name));
    }
    expect(config.match(/password: "\$2a\$11\$[./A-Za-z0-9]{53}"/g)).toHaveLength(6);
    expect((await stat(passwordsDir)).mode & 0o777).toBe(0o700);
  });

  it('refuses a wrong password, and keeps passwords when run again', async () => {
    const attempt = connectBus({ servers: nats.url, name: 'intruder', user: 'alice', pass: 'guess', connectTimeoutMs: 2000 });
    await expect(attempt).rejects.toThrow(/Authorization/i);
    const before = await password('alice');
    await run(process.execPath, ['tools/nats-config.mjs', ...USERS, '--client', 'carol', '--out', join(work, 'again.conf'), '--passwords-dir', passwordsDir], {
      cwd: ROOT,
    });
    expect(await password('alice')).toBe(before);
    expect(await password('carol')).toMatch(/^[\w-]{32}$/);
  });

  it('rejects an ID that is not one subject token, and a name used twice', async () => {
    for (const args of [
      ['--client', 'a.b'],
      ['--client', 'x', '--worker', 'x'],
    ]) {
      const failed = await run(process.execPath, ['tools/nats-config.mjs', ...args, '--passwords-dir', passwordsDir], { cwd: ROOT }).catch(
        (e: { code: number; stderr: string }) => e,
      );
      expect(failed).toMatchObject({ code: 2 });
      expect((failed as { stderr: string }).stderr).toMatch(/an ID is 1-64|named twice/);
    }
  });
});

describe('a client', () => {
  it("publishes on its own client subjects but not on another client's", async () => {
    const seen = await watch('cairn.v1.client.>');
    alice.nc.publish(subjects.client('alice', 'submit'), 'mine');
    alice.nc.publish(subjects.client('bob', 'submit'), 'forged');
    alice.nc.publish(subjects.client('bob', 'cancel'), 'forged');
    await settle(alice);
    await violated(alice, 'publish', subjects.client('bob', 'submit'));
    await violated(alice, 'publish', subjects.client('bob', 'cancel'));
    expect(seen.messages.map((m) => m.subject)).toEqual([subjects.client('alice', 'submit')]);
    seen.stop();
  });

  it("gets a service's reply on its own inbox", async () => {
    const responder = svc.nc.subscribe(subjects.client('alice', 'status'), {
      callback: (_e, m) => void answer(m, () => ok({ state: 'queued' })),
    });
    await svc.nc.flush();
    expect(await call(alice.nc, subjects.client('alice', 'status'), { job: 'j-00000001' })).toEqual(ok({ state: 'queued' }));
    responder.unsubscribe();
  });

  it("follows its own logs but cannot subscribe to another client's", async () => {
    const mine: Msg[] = [];
    const theirs: Msg[] = [];
    alice.nc.subscribe(subjects.logsOfClient('alice'), { callback: into(mine) });
    alice.nc.subscribe(subjects.logsOfClient('bob'), { callback: into(theirs) });
    alice.nc.subscribe(subjects.logsAll, { callback: into(theirs) });
    await settle(alice);
    await violated(alice, 'subscription', subjects.logsOfClient('bob'));
    await violated(alice, 'subscription', subjects.logsAll);
    svc.nc.publish(subjects.log('bob', 'j-00000002', 'w1'), 'secret build output');
    svc.nc.publish(subjects.log('alice', 'j-00000001', 'w1'), 'hers');
    await settle(alice);
    await expect.poll(() => mine.map((m) => m.subject)).toEqual([subjects.log('alice', 'j-00000001', 'w1')]);
    expect(theirs).toEqual([]);
  });

  it('cannot speak for the scheduler, a worker, an admin, or listen on another inbox', async () => {
    const seen = await watch('cairn.v1.>');
    const forbidden = [
      subjects.enqueue,
      subjects.toScheduler('w1', 'complete'),
      subjects.toWorker('w1', 'assign'),
      subjects.admin('client-rate'),
      subjects.result('linux-x86_64'),
    ];
    for (const subject of forbidden) alice.nc.publish(subject, '{}');
    const snooped: Msg[] = [];
    alice.nc.subscribe('_INBOX_bob.>', { callback: into(snooped) });
    alice.nc.subscribe(subjects.toWorker('w1', 'assign'), { callback: into(snooped) });
    await settle(alice);
    for (const subject of forbidden) await violated(alice, 'publish', subject);
    await violated(alice, 'subscription', '_INBOX_bob.>');
    await violated(alice, 'subscription', subjects.toWorker('w1', 'assign'));
    svc.nc.publish(subjects.toWorker('w1', 'assign'), '{}');
    await settle(alice);
    expect(seen.messages.map((m) => m.subject)).toEqual([subjects.toWorker('w1', 'assign')]);
    expect(snooped).toEqual([]);
    seen.stop();
  });

  it("cannot read the jobs bucket, the results stream or other clients' contexts", async () => {
    const jobs = await openBucket(svc.nc, buckets.jobs);
    await jobs.put('j-00000001', JSON.stringify({ client: 'bob', secret: 'sealed' }));
    const direct = `$JS.API.DIRECT.GET.KV_${buckets.jobs}.$KV.${buckets.jobs}.j-00000001`;
    const attempts = [
      alice.nc.request(direct, Empty, { timeout: 1000 }),
      alice.nc.request(`$JS.API.STREAM.INFO.KV_${buckets.jobs}`, Empty, { timeout: 1000 }),
      alice.nc.request(`$JS.API.CONSUMER.CREATE.${streams.results.name}`, Empty, { timeout: 1000 }),
      alice.nc.request(`$JS.API.STREAM.MSG.GET.${blobStores.contexts.stream}`, JSON.stringify({ seq: 1 }), { timeout: 1000 }),
      alice.nc.request(`$JS.API.DIRECT.GET.${blobStores.contexts.stream}`, JSON.stringify({ seq: 1 }), { timeout: 1000 }),
      alice.nc.request(`$JS.API.DIRECT.GET.${blobStores.contexts.stream}.${subjects.blobsOf('contexts', 'bob')}.m.${'a'.repeat(64)}`, Empty, { timeout: 1000 }),
    ];
    for (const attempt of attempts) await expect(attempt).rejects.toThrow();
    await violated(alice, 'publish', direct);
    await violated(alice, 'publish', `$JS.API.STREAM.INFO.KV_${buckets.jobs}`);
    await violated(alice, 'publish', `$JS.API.CONSUMER.CREATE.${streams.results.name}`);
    await violated(alice, 'publish', `$JS.API.STREAM.MSG.GET.${blobStores.contexts.stream}`);
    await violated(alice, 'publish', `$JS.API.DIRECT.GET.${blobStores.contexts.stream}`);
    await violated(alice, 'publish', `$JS.API.DIRECT.GET.${blobStores.contexts.stream}.${subjects.blobsOf('contexts', 'bob')}.m.${'a'.repeat(64)}`);
    // The KV library itself fails the same way: opening the bucket needs its stream info.
    await expect(new Kvm(alice.nc).open(buckets.jobs).then((kv) => kv.get('j-00000001'))).rejects.toThrow();
  });
});

describe('a worker', () => {
  it('publishes to the scheduler as itself, never as another worker', async () => {
    const seen = await watch('cairn.v1.sched.>');
    w1.nc.publish(subjects.toScheduler('w1', 'heartbeat'), '{}');
    w1.nc.publish(subjects.toScheduler('w2', 'heartbeat'), '{}');
    w1.nc.publish(subjects.toScheduler('w2', 'complete'), '{}');
    await settle(w1);
    await violated(w1, 'publish', subjects.toScheduler('w2', 'heartbeat'));
    await violated(w1, 'publish', subjects.toScheduler('w2', 'complete'));
    expect(seen.messages.map((m) => m.subject)).toEqual([subjects.toScheduler('w1', 'heartbeat')]);
    seen.stop();
  });

  it("answers its own assignments but cannot subscribe to another worker's", async () => {
    const stolen: Msg[] = [];
    w1.nc.subscribe(subjects.toWorker('w2', 'assign'), { callback: into(stolen) });
    w1.nc.subscribe(subjects.toWorker('w1', 'assign'), { callback: (_e, m) => void answer(m, () => ok({ accepted: true })) });
    await settle(w1);
    await violated(w1, 'subscription', subjects.toWorker('w2', 'assign'));
    // The reply goes to the scheduler's inbox, which the worker may answer but not publish to otherwise.
    expect(await call(svc.nc, subjects.toWorker('w1', 'assign'), { job: 'j-00000001' })).toEqual(ok({ accepted: true }));
    svc.nc.publish(subjects.toWorker('w2', 'assign'), '{}');
    await settle(w1);
    expect(stolen).toEqual([]);
    w1.nc.publish('_INBOX.forged', 'x');
    await settle(w1);
    await violated(w1, 'publish', '_INBOX.forged');
  });

  it("cannot touch the scheduler's buckets, write contexts, or write or purge artifacts but its own", async () => {
    const forged = [
      `$KV.${buckets.workers}.w2`,
      `${subjects.blobsOf('contexts', 'alice')}.c.forged`,
      `${subjects.blobsOf('artifacts', 'w2')}.m.${'b'.repeat(64)}`,
      // Log chunks in another worker's name: readers would take them for that worker's run.
      subjects.log('alice', 'j-00000001', 'w2'),
      `$JS.API.STREAM.PURGE.${blobStores.artifacts.stream}`,
      `$JS.API.STREAM.MSG.DELETE.${blobStores.artifacts.stream}`,
    ];
    for (const subject of forged) w1.nc.publish(subject, '{}');
    await settle(w1);
    for (const subject of forged) await violated(w1, 'publish', subject);
  });
});

describe('an admin', () => {
  it('sends admin requests and reads job status, but cannot submit or act as a worker', async () => {
    const seen = await watch('cairn.v1.>');
    ops.nc.publish(subjects.admin('pools'), '{}');
    ops.nc.publish(subjects.client('bob', 'status'), '{}');
    ops.nc.publish(subjects.client('bob', 'submit'), '{}');
    ops.nc.publish(subjects.toScheduler('w1', 'register'), '{}');
    await settle(ops);
    await violated(ops, 'publish', subjects.client('bob', 'submit'));
    await violated(ops, 'publish', subjects.toScheduler('w1', 'register'));
    expect(seen.messages.map((m) => m.subject)).toEqual([subjects.admin('pools'), subjects.client('bob', 'status')]);
    seen.stop();
  });

  it('reads what cairn up supervises (the cairn-services bucket), but cannot write it or read the jobs bucket', async () => {
    await (await openBucket(svc.nc, buckets.services)).put('scheduler', '{"state":"ready"}');
    await openBucket(svc.nc, buckets.jobs);
    const services = await openBucket(ops.nc, buckets.services);
    const keys: string[] = [];
    for await (const key of await services.keys()) keys.push(key);
    expect(keys).toEqual(['scheduler']);
    expect((await services.get('scheduler'))?.string()).toBe('{"state":"ready"}');
    await expect(services.put('scheduler', '{"state":"forged"}')).rejects.toThrow(/permission/i);
    await expect(openBucket(ops.nc, buckets.jobs)).rejects.toThrow(/permission/i);
  });
});

describe('allowed flows end to end', () => {
  it('the service role creates the streams, blob stores and KV buckets', async () => {
    await ensureJetStream(svc.nc);
    const kv = await openBucket(svc.nc, buckets.settings);
    await kv.put('rate.alice', '2');
    expect((await kv.get('rate.alice'))?.string()).toBe('2');
    const names: string[] = [];
    for await (const s of (await jetstreamManager(svc.nc)).streams.list()) names.push(s.config.name);
    expect(names).toEqual(
      expect.arrayContaining([streams.logs.name, streams.results.name, `KV_${buckets.settings}`, blobStores.contexts.stream, blobStores.artifacts.stream]),
    );
  });

  it('alice uploads a context once and w1 reads it; nobody, alice included, can replace, pre-empt or purge it', async () => {
    const bytes = new Uint8Array(3 * CHUNK + 17).map((_, i) => (i * 31) % 251);
    const first = await putBlob(alice.nc, 'contexts', 'alice', [bytes]);
    expect(first.uploaded).toBe(true);
    expect(await putBlob(alice.nc, 'contexts', 'alice', [bytes], first.sha256)).toEqual({ sha256: first.sha256, bytes: 0, uploaded: false });
    const ref: BlobRef = { store: 'contexts', owner: 'alice', sha256: first.sha256 };
    expect(await blobInfo(svc.nc, ref)).toMatchObject({ size: bytes.length, chunks: 4 });
    expect(Buffer.concat(await chunksOf(w1.nc, ref)).equals(Buffer.from(bytes))).toBe(true);

    // Bob can write under his own name only: not alice's meta, not her chunks.
    const bobs = [`${subjects.blobsOf('contexts', 'alice')}.m.${first.sha256}`, `${subjects.blobsOf('contexts', 'alice')}.c.x`];
    for (const subject of bobs) bob.nc.publish(subject, '{}');
    await settle(bob);
    for (const subject of bobs) await violated(bob, 'publish', subject);
    // Nor can he purge the stream with a rollup header on a subject of his own, or by the API.
    const rollup = headers();
    rollup.set('Nats-Rollup', 'all');
    await expect(jetstream(bob.nc).publish(`${subjects.blobsOf('contexts', 'bob')}.m.${'c'.repeat(64)}`, '{}', { headers: rollup })).rejects.toThrow(/rollup/i);
    bob.nc.publish(`$JS.API.STREAM.PURGE.${blobStores.contexts.stream}`, '{}');
    await settle(bob);
    await violated(bob, 'publish', `$JS.API.STREAM.PURGE.${blobStores.contexts.stream}`);
    // The stream refuses purge and delete even to the services.
    const jsm = await jetstreamManager(svc.nc);
    await expect(jsm.streams.purge(blobStores.contexts.stream)).rejects.toThrow(/purge/i);
    await expect(jsm.streams.deleteMessage(blobStores.contexts.stream, 1)).rejects.toThrow(/delete/i);

    // Alice writing her own name again, chunks and meta by hand: readers keep the first.
    const js = jetstream(alice.nc);
    await js.publish(`${subjects.blobsOf('contexts', 'alice')}.c.second`, 'other bytes');
    await js.publish(`${subjects.blobsOf('contexts', 'alice')}.m.${first.sha256}`, JSON.stringify({ size: 11, chunks: 1, upload: 'second' }));
    expect(await blobInfo(svc.nc, ref)).toMatchObject({ size: bytes.length, chunks: 4 });
    expect(Buffer.concat(await chunksOf(w1.nc, ref)).equals(Buffer.from(bytes))).toBe(true);
  });

  it('w1 publishes a log chunk into CAIRN_LOGS with an ack, and alice sees it live', async () => {
    await ensureJetStream(svc.nc);
    const live: string[] = [];
    alice.nc.subscribe(subjects.jobLog('alice', 'j-00000009'), { callback: (e, m) => void (e === null && live.push(m.string())) });
    await alice.nc.flush();
    const ack = await jetstream(w1.nc).publish(subjects.log('alice', 'j-00000009', 'w1'), JSON.stringify({ job: 'j-00000009', seq: 1, text: 'step 1\n' }));
    expect(ack.stream).toBe(streams.logs.name);
    await expect.poll(() => live).toHaveLength(1);
    const stored = await (await jetstreamManager(svc.nc)).streams.getMessage(streams.logs.name, { seq: ack.seq });
    expect(stored?.subject).toBe(subjects.log('alice', 'j-00000009', 'w1'));
    // In w2's name: refused, and nothing reaches the stream or alice.
    await expect(
      jetstream(w1.nc).publish(subjects.log('alice', 'j-00000009', 'w2'), JSON.stringify({ job: 'j-00000009', seq: 2, text: 'all tests passed\n' }), {
        timeout: 2000,
      }),
    ).rejects.toThrow();
    await violated(w1, 'publish', subjects.log('alice', 'j-00000009', 'w2'));
    expect(live).toHaveLength(1);
  });

  it('w1 writes an artifact under its own name that the service reads back', async () => {
    const bytes = new TextEncoder().encode('#!/bin/sh\necho hello\n');
    const { sha256 } = await putBlob(w1.nc, 'artifacts', 'w1', [bytes]);
    expect(sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(Buffer.concat(await chunksOf(svc.nc, { store: 'artifacts', owner: 'w1', sha256 })).toString()).toBe('#!/bin/sh\necho hello\n');
  });
});
