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
  ensureJetStream,
  objectStores,
  ok,
  openBucket,
  openObjectStore,
  streams,
  subjects,
} from '@cairn/contracts';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { Empty, nuid, PermissionViolationError, type Msg, type NatsConnection } from '@nats-io/transport-node';
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
const paddedBase64Url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');

/**
 * A client's context upload in the object store's own format (NATS ADR-20: chunks on
 * `$O.<bucket>.C.<nuid>`, then a meta message on `$O.<bucket>.M.<base64url name>`), with
 * only what a client is allowed: a direct get of the meta subject to skip a context that
 * is already there, and acknowledged publishes. @nats-io/obj's own put cannot be used by a
 * client: it reads through STREAM.MSG.GET, which would let it read any object. The meta
 * publish expects no earlier meta on its subject, so a name, once written, stays.
 */
async function uploadContext(nc: NatsConnection, bytes: Uint8Array): Promise<{ digest: string; uploaded: boolean }> {
  const bucket = objectStores.contexts;
  const sha = createHash('sha256').update(bytes).digest();
  const digest = `sha256:${sha.toString('hex')}`;
  const meta = `$O.${bucket}.M.${paddedBase64Url(Buffer.from(digest))}`;
  const existing = await nc.request(`$JS.API.DIRECT.GET.OBJ_${bucket}.${meta}`, Empty, { timeout: 5000 });
  if (existing.headers?.code !== 404) return { digest, uploaded: false };
  const js = jetstream(nc);
  const id = nuid.next();
  let chunks = 0;
  for (let at = 0; at < bytes.length; at += CHUNK, chunks++) await js.publish(`$O.${bucket}.C.${id}`, bytes.subarray(at, at + CHUNK));
  const info = {
    name: digest,
    bucket,
    nuid: id,
    size: bytes.length,
    chunks,
    mtime: new Date().toISOString(),
    digest: `SHA-256=${paddedBase64Url(sha)}`,
    options: { max_chunk_size: CHUNK },
  };
  await js.publish(meta, JSON.stringify(info), { expect: { lastSubjectSequence: 0 } });
  return { digest, uploaded: true };
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
    await run(process.execPath, ['tools/nats-config.mjs', ...USERS, '--client', 'carol', '--out', join(work, 'again.conf'), '--passwords-dir', passwordsDir], { cwd: ROOT });
    expect(await password('alice')).toBe(before);
    expect(await password('carol')).toMatch(/^[\w-]{32}$/);
  });

  it('rejects an ID that is not one subject token, and a name used twice', async () => {
    for (const args of [['--client', 'a.b'], ['--client', 'x', '--worker', 'x']]) {
      const failed = await run(process.execPath, ['tools/nats-config.mjs', ...args, '--passwords-dir', passwordsDir], { cwd: ROOT }).catch((e: { code: number; stderr: string }) => e);
      expect(failed).toMatchObject({ code: 2 });
      expect((failed as { stderr: string }).stderr).toMatch(/an ID is 1-64|named twice/);
    }
  });
});

describe('a client', () => {
  it('publishes on its own client subjects but not on another client\'s', async () => {
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

  it('gets a service\'s reply on its own inbox', async () => {
    const responder = svc.nc.subscribe(subjects.client('alice', 'status'), {
      callback: (_e, m) => void answer(m, () => ok({ state: 'queued' })),
    });
    await svc.nc.flush();
    expect(await call(alice.nc, subjects.client('alice', 'status'), { job: 'j-00000001' })).toEqual(ok({ state: 'queued' }));
    responder.unsubscribe();
  });

  it('follows its own logs but cannot subscribe to another client\'s', async () => {
    const mine: Msg[] = [];
    const theirs: Msg[] = [];
    alice.nc.subscribe(subjects.logsOfClient('alice'), { callback: into(mine) });
    alice.nc.subscribe(subjects.logsOfClient('bob'), { callback: into(theirs) });
    alice.nc.subscribe(subjects.logsAll, { callback: into(theirs) });
    await settle(alice);
    await violated(alice, 'subscription', subjects.logsOfClient('bob'));
    await violated(alice, 'subscription', subjects.logsAll);
    svc.nc.publish(subjects.log('bob', 'j-00000002'), 'secret build output');
    svc.nc.publish(subjects.log('alice', 'j-00000001'), 'hers');
    await settle(alice);
    await expect.poll(() => mine.map((m) => m.subject)).toEqual([subjects.log('alice', 'j-00000001')]);
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

  it('cannot read the jobs bucket, the results stream or other clients\' contexts', async () => {
    const jobs = await openBucket(svc.nc, buckets.jobs);
    await jobs.put('j-00000001', JSON.stringify({ client: 'bob', secret: 'sealed' }));
    const direct = `$JS.API.DIRECT.GET.KV_${buckets.jobs}.$KV.${buckets.jobs}.j-00000001`;
    const attempts = [
      alice.nc.request(direct, Empty, { timeout: 1000 }),
      alice.nc.request(`$JS.API.STREAM.INFO.KV_${buckets.jobs}`, Empty, { timeout: 1000 }),
      alice.nc.request(`$JS.API.CONSUMER.CREATE.${streams.results.name}`, Empty, { timeout: 1000 }),
      alice.nc.request(`$JS.API.STREAM.MSG.GET.OBJ_${objectStores.contexts}`, JSON.stringify({ seq: 1 }), { timeout: 1000 }),
    ];
    for (const attempt of attempts) await expect(attempt).rejects.toThrow();
    await violated(alice, 'publish', direct);
    await violated(alice, 'publish', `$JS.API.STREAM.INFO.KV_${buckets.jobs}`);
    await violated(alice, 'publish', `$JS.API.CONSUMER.CREATE.${streams.results.name}`);
    await violated(alice, 'publish', `$JS.API.STREAM.MSG.GET.OBJ_${objectStores.contexts}`);
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

  it('answers its own assignments but cannot subscribe to another worker\'s', async () => {
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

  it('cannot touch the scheduler\'s buckets or write contexts', async () => {
    w1.nc.publish(`$KV.${buckets.workers}.w2`, '{"paused":true}');
    w1.nc.publish(`$O.${objectStores.contexts}.C.forged`, 'x');
    w1.nc.publish(`$JS.API.STREAM.PURGE.OBJ_${objectStores.artifacts}`, '{}');
    await settle(w1);
    await violated(w1, 'publish', `$KV.${buckets.workers}.w2`);
    await violated(w1, 'publish', `$O.${objectStores.contexts}.C.forged`);
    await violated(w1, 'publish', `$JS.API.STREAM.PURGE.OBJ_${objectStores.artifacts}`);
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

  it("reads what cairn up supervises (the cairn-services bucket), but cannot write it or read the jobs bucket", async () => {
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
  it('the service role creates the streams, KV buckets and object stores', async () => {
    await ensureJetStream(svc.nc);
    const kv = await openBucket(svc.nc, buckets.settings);
    await kv.put('rate.alice', '2');
    expect((await kv.get('rate.alice'))?.string()).toBe('2');
    await openObjectStore(svc.nc, objectStores.contexts);
    await openObjectStore(svc.nc, objectStores.artifacts);
    const names: string[] = [];
    for await (const s of (await jetstreamManager(svc.nc)).streams.list()) names.push(s.config.name);
    expect(names).toEqual(
      expect.arrayContaining([streams.logs.name, streams.results.name, `KV_${buckets.settings}`, `OBJ_${objectStores.contexts}`, `OBJ_${objectStores.artifacts}`]),
    );
  });

  it('alice uploads a context once; w1 reads it; bob cannot replace it', async () => {
    await openObjectStore(svc.nc, objectStores.contexts);
    const bytes = new Uint8Array(3 * CHUNK + 17).map((_, i) => (i * 31) % 251);
    const first = await uploadContext(alice.nc, bytes);
    expect(first.uploaded).toBe(true);
    expect(await uploadContext(alice.nc, bytes)).toEqual({ digest: first.digest, uploaded: false });
    const info = await (await new Objm(svc.nc).open(objectStores.contexts)).info(first.digest);
    expect(info?.size).toBe(bytes.length);

    const read = await (await new Objm(w1.nc).open(objectStores.contexts)).getBlob(first.digest);
    expect(read && Buffer.from(read).equals(Buffer.from(bytes))).toBe(true);

    // Write-once: a second meta message under the same name is refused by JetStream.
    const js = jetstream(bob.nc);
    const meta = `$O.${objectStores.contexts}.M.${paddedBase64Url(Buffer.from(first.digest))}`;
    await expect(js.publish(meta, '{}', { expect: { lastSubjectSequence: 0 } })).rejects.toThrow(/wrong last sequence/);
  });

  it('w1 publishes a log chunk into CAIRN_LOGS with an ack, and alice sees it live', async () => {
    await ensureJetStream(svc.nc);
    const live: string[] = [];
    alice.nc.subscribe(subjects.log('alice', 'j-00000009'), { callback: (e, m) => void (e === null && live.push(m.string())) });
    await alice.nc.flush();
    const ack = await jetstream(w1.nc).publish(subjects.log('alice', 'j-00000009'), JSON.stringify({ job: 'j-00000009', seq: 1, text: 'step 1\n' }));
    expect(ack.stream).toBe(streams.logs.name);
    await expect.poll(() => live).toHaveLength(1);
    const stored = await (await jetstreamManager(svc.nc)).streams.getMessage(streams.logs.name, { seq: ack.seq });
    expect(stored?.subject).toBe(subjects.log('alice', 'j-00000009'));
  });

  it('w1 writes an artifact object that the service reads back', async () => {
    await openObjectStore(svc.nc, objectStores.artifacts);
    const bytes = new TextEncoder().encode('#!/bin/sh\necho hello\n');
    const name = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    await (await new Objm(w1.nc).open(objectStores.artifacts)).putBlob({ name }, bytes);
    const back = await (await new Objm(svc.nc).open(objectStores.artifacts)).getBlob(name);
    expect(back && new TextDecoder().decode(back)).toBe('#!/bin/sh\necho hello\n');
  });
});
