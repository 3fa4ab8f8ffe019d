/**
 * The base-image-builder on real processes: NATS, the scheduler, the spec-compiler and a
 * runc worker (test/support/cluster.ts), the Debian docker-registry, and the service
 * itself as built. The matrix is two busybox images (a bootstrap and a child), so each
 * rebuild takes seconds; the Debian and OCaml images of infra/images are for the real
 * matrix (README's main job).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, callOrThrow, subjects, type BaseImageStatus, type Compiled } from '@cairn/contracts';
import { ROOT, startCluster, type Cluster } from '../../../test/support/cluster.js';
import { startRegistry, type RunningRegistry } from '../../../test/support/registry.js';

const MATRIX = `defaults: { pools: [linux-x86_64], schedule: "0 3 * * 1" }
images:
  - { name: "box:1", bootstrap: { kind: busybox-static }, spec: box.spec }
  - { name: "tools:1", parent: "box:1", spec: tools.spec }
`;
const BOX = (marker: string) => `((from bootstrap) (shell /bin/sh -c) (run (shell "echo ${marker} > /etc/box-marker")))`;
const TOOLS = (command: string) => `((from box:1) (shell /bin/sh -c) (run (shell "${command}")))`;

let cluster: Cluster;
let registry: RunningRegistry;
let matrixDir: string;
let service: { child: ChildProcess; output: string } | undefined;

/**
 * A receiver of the webhooks: it fails each event's first delivery (500), so every event it
 * keeps was retried; while `receiverDown`, it fails every delivery (503).
 */
const WEBHOOK_SECRET = 'webhook-secret-of-the-test-0123456789';
interface Delivered {
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
}
const delivered: Delivered[] = [];
const refusedOnce = new Set<string>();
let receiverDown = false;
let receiver: Server;
function startReceiver(): Promise<string> {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const id = String(req.headers['x-cairn-delivery']);
      if (receiverDown) {
        refusedOnce.add(id);
        res.writeHead(503).end();
        return;
      }
      if (!refusedOnce.has(id)) {
        refusedOnce.add(id);
        res.writeHead(500).end();
        return;
      }
      delivered.push({ body, headers: req.headers });
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) => receiver.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/images`)));
}
let webhookEnv: NodeJS.ProcessEnv = {};

/** Starts the service (as deployed: dist/main.js) on the matrix in `matrixDir`. */
function startService(env: NodeJS.ProcessEnv = {}): { child: ChildProcess; output: string } {
  const child = spawn(process.execPath, [join(ROOT, 'apps/base-image-builder/dist/main.js')], {
    env: {
      PATH: process.env.PATH,
      CAIRN_NATS: cluster.nats.url,
      CAIRN_LOG_FORMAT: 'text',
      CAIRN_HTTP_PORT: '0',
      CAIRN_IMAGES_DIR: matrixDir,
      CAIRN_REGISTRY: registry.url,
      CAIRN_SCHEDULES: '0',
      CAIRN_REPLICA_ID: 'test-replica',
      CAIRN_RETRY_FIRST_MS: '300',
      CAIRN_RETRY_MAX_MS: '600',
      ...webhookEnv,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const p = { child, output: '' };
  child.stdout.on('data', (d: Buffer) => (p.output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (p.output += d.toString()));
  return p;
}

async function stopService(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const p = service;
  service = undefined;
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill(signal);
  await exited;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch((e: unknown) => {
      if (e instanceof Error && / failed: /.test(e.message)) throw e;
      return undefined;
    });
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s; the service said:\n${service?.output.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const images = async () => callOrThrow<BaseImageStatus[]>(cluster.nc, subjects.admin('images'), {}, { timeoutMs: 5000 });
const imageOf = async (name: string) => (await images()).find((i) => i.name === name)!;
const rebuild = (body: { names?: string[]; all?: boolean; force?: boolean }) =>
  call<BaseImageStatus[]>(cluster.nc, subjects.admin('images-rebuild'), body, { timeoutMs: 60_000 });

/** Every image published, none building: the digests by name. */
const settled = () =>
  until('every image published', async () => {
    const all = await images();
    const failed = all.find((i) => i.state === 'failed');
    if (failed) throw new Error(`${failed.name} failed: ${failed.why}`);
    return all.every((i) => i.state === 'published' && i.digest) && !/building|queued|waiting/.test(all.map((i) => i.why).join())
      ? new Map(all.map((i) => [i.name, i.digest!]))
      : undefined;
  });

/** The digest `repository:tag` names in the registry now. */
async function tagged(repository: string, tag: string): Promise<string | undefined> {
  const res = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.index.v1+json' },
  });
  return res.ok ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
}

/** Build jobs this service process submitted for the image (it logs each). */
const jobsSubmitted = (p: { output: string }, name: string) => p.output.split('\n').filter((l) => l.includes(`${name}: job j-`)).length;
/** The IDs of those jobs. */
const jobIds = (output: string, name: string) => [...output.matchAll(new RegExp(`${name.replace('.', '\\.')}: job (j-[\\w-]+)`, 'g'))].map((m) => m[1]!);

async function setSpecs(box: string, tools: string): Promise<void> {
  await writeFile(join(matrixDir, 'box.spec'), box);
  await writeFile(join(matrixDir, 'tools.spec'), tools);
}

/** The base step's ID of a job that starts from `image` (the spec-compiler pins the tag). */
async function baseStepId(image: string): Promise<string> {
  const compiled = await callOrThrow<Compiled>(
    cluster.nc,
    subjects.compile,
    { spec: `((from ${new URL(registry.url).host}/${image}) (run (shell true)))` },
    { timeoutMs: 30_000 },
  );
  return compiled.steps[0]!.id!;
}

beforeAll(async () => {
  registry = await startRegistry();
  const fetcher = { CAIRN_FETCHER: `registry:${registry.url}` };
  cluster = await startCluster({ workers: 1, workerEnv: fetcher });
  // The compiler must pin the images of the registry, as the workers fetch them.
  await cluster.stopProcess(cluster.compiler);
  cluster.spawnLike(cluster.compiler, 'spec-compiler-registry', fetcher);
  matrixDir = await mkdtemp(join(tmpdir(), 'cairn-matrix-'));
  await writeFile(join(matrixDir, 'matrix.yaml'), MATRIX);
  await setSpecs(BOX('one'), TOOLS('echo tools > /etc/tools-marker'));
  await writeFile(join(matrixDir, 'webhook-secret'), `${WEBHOOK_SECRET}\n`);
  // The second URL has no one listening: its failures must not hold up the publish or the first.
  webhookEnv = {
    CAIRN_IMAGE_WEBHOOKS: `${await startReceiver()}, http://127.0.0.1:1/nobody`,
    CAIRN_IMAGE_WEBHOOK_SECRET_FILE: join(matrixDir, 'webhook-secret'),
  };
  service = startService();
  await until('the service answering', async () => ((await rebuild({ all: true })).ok ? true : undefined));
  await settled();
}, 240_000);

afterAll(async () => {
  await stopService();
  receiver?.close();
  await cluster?.stop();
  await registry?.stop();
  if (matrixDir) await rm(matrixDir, { recursive: true, force: true });
});

describe('base-image-builder', () => {
  it('builds the matrix in dependency order and publishes every image under its tags', async () => {
    const digests = await settled();
    expect(await tagged('box', '1')).toBe(digests.get('box:1'));
    expect(await tagged('tools', '1')).toBe(digests.get('tools:1'));
    const out = service!.output;
    expect(out.indexOf('box:1: published')).toBeGreaterThan(-1);
    expect(out.indexOf('tools:1: job')).toBeGreaterThan(out.indexOf('box:1: published'));
  });

  it('a pass with unchanged inputs submits no job and publishes nothing', async () => {
    const before = await settled();
    const jobs = jobsSubmitted(service!, 'box:1') + jobsSubmitted(service!, 'tools:1');
    // What a schedule does: look at every image now.
    expect((await rebuild({ all: true })).ok).toBe(true);
    expect(await settled()).toEqual(before);
    expect(jobsSubmitted(service!, 'box:1') + jobsSubmitted(service!, 'tools:1')).toBe(jobs);
    expect((await imageOf('tools:1')).why).toBe('inputs unchanged');
  });

  it('a changed layer spec rebuilds the image and its children with new digests; a job on it gets a new base step', async () => {
    const before = await settled();
    const stepBefore = await baseStepId('tools:1');
    await stopService();
    await setSpecs(BOX('two'), TOOLS('echo tools > /etc/tools-marker'));
    service = startService();
    await until('box:1 rebuilt', async () => ((await imageOf('box:1')).digest !== before.get('box:1') ? true : undefined));
    const after = await settled();
    expect(after.get('box:1')).not.toBe(before.get('box:1'));
    // tools:1's spec did not change; its parent's digest did.
    expect(after.get('tools:1')).not.toBe(before.get('tools:1'));
    expect(await tagged('tools', '1')).toBe(after.get('tools:1'));
    expect((await imageOf('tools:1')).history.map((h) => h.digest).slice(0, 2)).toEqual([after.get('tools:1'), before.get('tools:1')]);
    expect(await baseStepId('tools:1')).not.toBe(stepBefore);
  });

  it('posts each new digest to the webhooks, signed, retried after a failure, naming the previous digest and the job', async () => {
    const now = new Map((await images()).map((i) => [i.name, i]));
    const tools = now.get('tools:1')!;
    const events = () => delivered.map((d) => ({ ...d, event: JSON.parse(d.body) as Record<string, unknown> }));
    const last = await until("the webhook told of tools:1's new digest", async () =>
      events().find((e) => e.event.image === 'tools:1' && e.event.digest === tools.digest),
    );
    expect(last.event).toEqual({
      event: 'image.published',
      image: 'tools:1',
      repository: 'tools',
      tag: '1',
      digest: tools.digest,
      previous: tools.history[1]!.digest,
      job: tools.history[0]!.job,
      at: expect.any(Number),
    });
    expect(last.event.job).toMatch(/^j-/);
    expect(last.headers['x-cairn-signature']).toBe(`sha256=${createHmac('sha256', WEBHOOK_SECRET).update(last.body).digest('hex')}`);
    // Each new digest of this process, once (the receiver refused every first delivery: each was retried).
    const box = now.get('box:1')!;
    await until("the webhook told of box:1's new digest", async () => events().find((e) => e.event.image === 'box:1' && e.event.digest === box.digest));
    for (const image of [box, tools]) expect(events().filter((e) => e.event.digest === image.digest)).toHaveLength(1);
    expect(events().find((e) => e.event.digest === box.digest)!.event.previous).toBe(box.history[1]!.digest);
    expect(service!.output).toMatch(/webhook http:\/\/127\.0\.0\.1:1\/nobody: box:1 1 -> sha256:\S+: attempt 1 failed/);
    expect(service!.output).not.toContain(WEBHOOK_SECRET);
  });

  it('a failing build keeps the old image published, is retried with backoff, then shows failed in /metrics; each failure is a webhook, kept across a kill -9', async () => {
    const before = await settled();
    await stopService();
    await setSpecs(BOX('two'), TOOLS('exit 3'));
    // The receiver fails every delivery until the service is killed: the failure's event must outlive it.
    receiverDown = true;
    service = startService({ CAIRN_MAX_ATTEMPTS: '2' });
    const hookUrl = webhookEnv.CAIRN_IMAGE_WEBHOOKS!.split(',')[0]!;
    const shownHook = hookUrl.replace(/\?.*$/, '');
    await until('the first failure told to the receiver, and refused', async () =>
      service!.output.includes(`webhook ${shownHook}: tools:1 failed (1): attempt 1 failed (HTTP 503)`) ? true : undefined,
    );
    const killed = service!.output;
    await stopService('SIGKILL');
    receiverDown = false;
    service = startService({ CAIRN_MAX_ATTEMPTS: '2' });
    const failed = await until('tools:1 failed', async () => {
      const image = await imageOf('tools:1');
      return image.state === 'failed' ? image : undefined;
    });
    expect(failed.why).toMatch(/^failed 2 times: job j-\S+ failed/);
    expect(failed.failure).toMatchObject({ count: 2, job: expect.stringMatching(/^j-/), reason: expect.stringMatching(/^job j-\S+ failed/) });
    expect(failed.failure!.retryAt).toBeUndefined();
    expect(killed + service!.output).toMatch(/tools:1: rebuild failed .*retrying at/);
    expect(new Set([...jobIds(killed, 'tools:1'), ...jobIds(service!.output, 'tools:1')]).size).toBe(2);
    expect(failed.digest).toBe(before.get('tools:1'));
    expect(await tagged('tools', '1')).toBe(before.get('tools:1'));
    const http = /http (http:\/\/[^\s"]+)/.exec(service!.output)![1]!;
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toContain('cairn_base_image_state{image="tools:1",state="failed"} 1');
    expect(metrics).toContain('cairn_base_image_state{image="box:1",state="published"} 1');

    // Both failures reached the receiver: the first one's delivery from the record the killed process left.
    const failures = await until('both failures told', async () => {
      const told = delivered
        .map((d) => ({ ...d, event: JSON.parse(d.body) as Record<string, unknown> }))
        .filter((d) => d.event.event === 'image.failed' && d.event.image === 'tools:1' && d.event.inputs === failed.inputs);
      return told.length >= 2 ? told : undefined;
    });
    expect(failures.map((f) => f.event.failures)).toEqual(expect.arrayContaining([1, 2]));
    expect(failures).toHaveLength(2);
    const [first, second] = [1, 2].map((n) => failures.find((f) => f.event.failures === n)!);
    expect(first!.event).toEqual({
      event: 'image.failed',
      image: 'tools:1',
      repository: 'tools',
      tags: ['1'],
      reason: expect.stringMatching(/^job j-\S+ failed/),
      failures: 1,
      retryAt: expect.any(Number),
      job: expect.stringMatching(/^j-/),
      published: before.get('tools:1'),
      inputs: failed.inputs,
      at: expect.any(Number),
    });
    expect(second!.event).toMatchObject({ failures: 2, job: failed.failure!.job, reason: failed.failure!.reason, published: before.get('tools:1') });
    expect(second!.event.retryAt).toBeUndefined();
    for (const f of failures) {
      expect(f.headers['x-cairn-event']).toBe('image.failed');
      expect(f.headers['x-cairn-signature']).toBe(`sha256=${createHmac('sha256', WEBHOOK_SECRET).update(f.body).digest('hex')}`);
    }
    // The first was refused before the kill and made by the next process, under the same delivery id.
    expect(refusedOnce.has(String(first!.headers['x-cairn-delivery']))).toBe(true);
  });

  it('kill -9 in the middle of a rebuild: the restarted service finishes it once', async () => {
    const before = new Map((await images()).map((i) => [i.name, i.digest!]));
    await stopService();
    await setSpecs(BOX('two'), TOOLS('sleep 4; echo slow > /etc/tools-marker'));
    service = startService();
    const job = await until('tools:1 building as a job', async () => (await imageOf('tools:1')).job);
    await stopService('SIGKILL');
    service = startService();
    const after = await until('tools:1 published again', async () => {
      const image = await imageOf('tools:1');
      return image.state === 'published' && image.digest !== before.get('tools:1') ? image : undefined;
    });
    // Resumed, not submitted again: the restarted process submitted no job for it.
    expect(service!.output).toContain(`tools:1: resuming the rebuild claimed at`);
    expect(jobsSubmitted(service!, 'tools:1')).toBe(0);
    expect(after.history.filter((h) => h.digest === after.digest)).toHaveLength(1);
    expect(await tagged('tools', '1')).toBe(after.digest);
    expect(job).toMatch(/^j-/);
  });
});
