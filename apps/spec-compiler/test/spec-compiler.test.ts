import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  answer,
  call,
  connectBus,
  limits,
  ok,
  putBlob,
  reject,
  subjects,
  type Compiled,
  type JobSubmission,
  type Reply,
  type SealedSecret,
  type Submitted,
} from '@cairn/contracts';
import { OciLayoutFetcher } from '@cairn/fetcher';
import { writeOciImage, type OciImage } from '@cairn/oci-image';
import { parseSpec, printSpec } from '@cairn/spec';
import type { RunningService } from '@cairn/service-kit';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { startSpecCompiler } from '../src/index.js';
import { busyboxImage } from '../../../test/support/images.js';
import { startNats, type RunningNats } from '../../../test/support/nats.js';

// Small enough to upload a context over it in a test; the real limit is 256 MiB.
const MAX_CONTEXT = 64 * 1024;

let work: string;
let nats: RunningNats;
let service: RunningService;
let client: NatsConnection;
let busybox: OciImage;
let tools: OciImage;

/** Raw bytes on a subject, as a hostile or broken client would send them. */
async function rawRequest(subject: string, payload: Uint8Array | string): Promise<Reply<unknown>> {
  const msg = await client.request(subject, payload, { timeout: 5000 });
  return msg.json<{ response: Reply<unknown> }>().response;
}

function rejection(reply: Reply<unknown>): { code: string; message: string } {
  if (reply.ok) throw new Error(`expected a rejection, got ${JSON.stringify(reply.value).slice(0, 200)}`);
  return reply.error;
}

function value<T>(reply: Reply<T>): T {
  if (!reply.ok) throw new Error(`expected success, got ${reply.error.code}: ${reply.error.message}`);
  return reply.value;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cairn-spec-compiler-'));
  const layout = join(work, 'layout');
  busybox = await busyboxImage(layout, 'cairn/busybox:latest');
  const toolsRootfs = await mkdtemp(join(work, 'tools-rootfs-'));
  await writeFile(join(toolsRootfs, 'tool'), '#!/bin/sh\necho tool\n');
  tools = await writeOciImage(layout, 'cairn/tools:1', [{ rootfs: toolsRootfs, config: { env: [['PATH', '/bin']] } }]);
  // Room for a message over the spec limit, so that the limit is the service's to enforce.
  nats = await startNats({ config: `max_payload: ${4 * 1024 * 1024}\n` });
  service = await startSpecCompiler({
    fetcher: new OciLayoutFetcher(layout),
    env: { CAIRN_NATS: nats.url, CAIRN_LOG_FORMAT: 'text' },
    enqueue: { timeoutMs: 2000, retries: 0 },
    maxContextBytes: MAX_CONTEXT,
  });
  client = await connectBus({ servers: nats.url, name: 'spec-compiler-test' });
}, 60_000);

afterAll(async () => {
  await client?.close();
  await service?.close();
  await nats?.stop();
  await rm(work, { recursive: true, force: true });
});

const SEXP = `((build tools
        ((from cairn/tools:1)
         (run (shell "make tools"))))
 (from cairn/busybox)
 (run (shell "apk add make"))
 (env A 1)
 (copy (from (build tools)) (src /usr/bin/tool) (dst /usr/bin/tool))
 (run (shell "tool --version"))
 (copy (src .) (dst /src/))
 (run (shell make))
)
`;

describe('compile', () => {
  it('compiles an S-expression spec to canonical form with every base image pinned by digest', async () => {
    // Written in a non-canonical layout on purpose, with a comment and odd spacing.
    const messy = SEXP.replace('(env A 1)', '(env   A\n 1) ; set A').replace(/\n\)\n$/, ')');
    const compiled = value(await call<Compiled>(client, subjects.compile, { spec: messy }));
    const pinned = SEXP.replace('(from cairn/tools:1)', `(from cairn/tools:1@${tools.index.digest})`).replace(
      '(from cairn/busybox)',
      `(from cairn/busybox@${busybox.index.digest})`,
    );
    expect(compiled.canonical).toBe(printSpec(parseSpec(pinned)));
    expect(compiled.images).toEqual([
      { stage: 'tools', image: 'cairn/tools:1', pinned: `cairn/tools:1@${tools.index.digest}` },
      { stage: '', image: 'cairn/busybox', pinned: `cairn/busybox@${busybox.index.digest}` },
    ]);
    expect(compiled.steps.map((s) => [s.stage, s.kind, s.id === undefined ? 'unknown' : 'known'])).toEqual([
      ['tools', 'base', 'known'],
      ['tools', 'run', 'known'],
      ['', 'base', 'known'],
      ['', 'run', 'known'],
      ['', 'context', 'unknown'],
      ['', 'copy', 'unknown'],
      ['', 'run', 'unknown'],
      ['', 'copy', 'unknown'],
      ['', 'run', 'unknown'],
    ]);
    expect(compiled.steps[5]?.unknown).toContain('child build');
    // The environment part: the install step, the last one known before the context matters.
    expect(compiled.cacheHint).toBe(compiled.steps[3]?.id);
  });

  it('hints at the last step before the first copy from the context', async () => {
    const spec = `((from cairn/busybox) (run (shell "apk add make")) (copy (src .) (dst /src)) (run (shell make)))`;
    const compiled = value(await call<Compiled>(client, subjects.compile, { spec }));
    expect(compiled.steps.map((s) => s.kind)).toEqual(['base', 'run', 'copy', 'run']);
    expect(compiled.steps[2]?.unknown).toBe('no build context was given');
    expect(compiled.cacheHint).toBe(compiled.steps[1]?.id);
    // Without any context copy, the hint is the last step: the whole job is environment.
    const whole = value(await call<Compiled>(client, subjects.compile, { spec: `((from cairn/busybox) (run (shell a)) (run (shell b)))` }));
    expect(whole.cacheHint).toBe(whole.steps[2]?.id);
  });

  it('compiles a Dockerfile into the canonical S-expression form with its image pinned', async () => {
    const dockerfile = 'FROM cairn/busybox:latest\nRUN echo hi\nCOPY . /src/\nRUN make\n';
    const compiled = value(await call<Compiled>(client, subjects.compile, { spec: dockerfile, format: 'dockerfile' }));
    expect(compiled.canonical).toContain(`(from cairn/busybox:latest@${busybox.index.digest})`);
    expect(parseSpec(compiled.canonical).from).toBe(`cairn/busybox:latest@${busybox.index.digest}`);
    expect(printSpec(parseSpec(compiled.canonical))).toBe(compiled.canonical);
    const run = compiled.steps.find((s) => s.op.includes('echo hi'));
    expect(run?.id).toMatch(/^[0-9a-f]{64}$/);
    expect(compiled.cacheHint).toBe(run?.id);
  });

  it('keeps a reference already pinned as it is', async () => {
    const spec = `((from cairn/busybox:latest@${busybox.index.digest}) (run (shell true)))`;
    const compiled = value(await call<Compiled>(client, subjects.compile, { spec }));
    expect(compiled.images).toEqual([
      { stage: '', image: `cairn/busybox:latest@${busybox.index.digest}`, pinned: `cairn/busybox:latest@${busybox.index.digest}` },
    ]);
    expect(compiled.canonical).toBe(`((from cairn/busybox:latest@${busybox.index.digest})\n (run (shell true))\n)\n`);
  });

  it('rejects a bad spec as invalid-spec with the line and column of the problem', async () => {
    const error = rejection(await call(client, subjects.compile, { spec: '((from cairn/busybox)\n (run (shell a))\n   (frobnicate x))' }));
    expect(error.code).toBe('invalid-spec');
    expect(error.message).toMatch(/^3:5: unknown op "frobnicate"/);
    const docker = rejection(await call(client, subjects.compile, { spec: 'FROM cairn/busybox\nRUN true\nHEALTHCHECK CMD true\n', format: 'dockerfile' }));
    expect(docker.code).toBe('invalid-spec');
    expect(docker.message).toMatch(/^3:\d+: .*HEALTHCHECK/);
  });

  it('rejects a base image that cannot be resolved, naming the image and its stage', async () => {
    const spec = `((build tools ((from cairn/absent:2) (run (shell x)))) (from cairn/busybox) (run (shell y)))`;
    const error = rejection(await call(client, subjects.compile, { spec }));
    expect(error.code).toBe('not-found');
    expect(error.message).toContain('cannot resolve base image cairn/absent:2 of build "tools"');
    expect(error.message).toContain('no image cairn/absent:2');
    const main = rejection(await call(client, subjects.compile, { spec: '((from cairn/busybox:9.9) (run (shell y)))' }));
    expect(main.message).toContain('cannot resolve base image cairn/busybox:9.9 of the main spec');
  });

  it('answers malformed messages with a reason and keeps serving', async () => {
    const notJson = rejection(await rawRequest(subjects.compile, new Uint8Array([0xff, 0x7b, 0x00])));
    expect(notJson).toMatchObject({ code: 'malformed' });
    expect(notJson.message).toContain('not JSON');
    const notEnvelope = rejection(await rawRequest(subjects.compile, JSON.stringify({ spec: '((from x))' })));
    expect(notEnvelope.message).toContain('envelope');
    const wrongFields = rejection(await call(client, subjects.compile, { spec: 42, format: 'yaml' }));
    expect(wrongFields.code).toBe('malformed');
    expect(wrongFields.message).toMatch(/^compile: spec: .*; format: /);
    const huge = `((from cairn/busybox) (comment "${'x'.repeat(limits.maxSpecBytes)}"))`;
    const tooLarge = rejection(await call(client, subjects.compile, { spec: huge }));
    expect(tooLarge.code).toBe('too-large');
    expect(tooLarge.message).toContain(`more than the limit of ${limits.maxSpecBytes}`);
    expect(value(await call<Compiled>(client, subjects.compile, { spec: '((from cairn/busybox))' })).steps).toHaveLength(1);
  });
});

describe('submit', () => {
  // Stand-in for the scheduler (not written yet): a raw responder on subjects.enqueue that
  // records what the spec-compiler forwards and answers in the Nest envelope.
  let standIn: Subscription;
  let forwarded: JobSubmission[];
  let schedulerReply: (job: JobSubmission) => Reply<Submitted>;

  beforeAll(() => {
    standIn = client.subscribe(subjects.enqueue, {
      callback: (_err, msg) =>
        void answer(msg, (data) => {
          forwarded.push(data as JobSubmission);
          return schedulerReply(data as JobSubmission);
        }),
    });
  });
  afterAll(() => standIn.unsubscribe());
  beforeEach(() => {
    forwarded = [];
    schedulerReply = (job) => ok({ job: 'j-standin0001', cacheHint: job.cacheHint, steps: job.steps });
  });

  const secret: SealedSecret = { id: 'token', sealed: { epk: 'ZXBr', iv: 'aXY=', ct: 'Y3Q=', tag: 'dGFn' } };

  async function uploadContext(bytes: Uint8Array, owner = 'alice'): Promise<string> {
    const { sha256 } = await putBlob(client, 'contexts', owner, [bytes]);
    return `sha256:${sha256}`;
  }

  it('compiles and forwards the job with the client ID from the subject, returning the scheduler reply as is', async () => {
    const context = await uploadContext(new TextEncoder().encode('a small tar, as far as this test cares'));
    const reply = await call<Submitted>(client, subjects.client('alice', 'submit'), {
      pool: 'linux-x86_64',
      spec: SEXP,
      name: 'hello',
      contextDigest: context,
      urgent: true,
      secrets: [secret],
      outputs: ['/usr/bin/tool'],
      timeoutSeconds: 600,
    });
    const compiled = value(await call<Compiled>(client, subjects.compile, { spec: SEXP }));
    expect(reply).toEqual(ok({ job: 'j-standin0001', cacheHint: compiled.cacheHint, steps: compiled.steps.length }));
    expect(forwarded).toEqual([
      {
        client: 'alice',
        pool: 'linux-x86_64',
        name: 'hello',
        spec: compiled.canonical,
        contextDigest: context,
        urgent: true,
        secrets: [secret],
        outputs: ['/usr/bin/tool'],
        timeoutSeconds: 600,
        cacheHint: compiled.cacheHint,
        steps: compiled.steps.length,
        // None given: one made per request, so the compiler's own enqueue retries are safe.
        idempotencyKey: expect.stringMatching(/^[0-9a-f-]{36}$/),
      },
    ]);
  });

  it("passes the client's idempotency key on, and refuses a malformed one", async () => {
    forwarded.length = 0;
    expect((await call<Submitted>(client, subjects.client('alice', 'submit'), { pool: 'linux-x86_64', spec: SEXP, idempotencyKey: 'ci-99.build' })).ok).toBe(
      true,
    );
    expect(forwarded.at(-1)).toMatchObject({ idempotencyKey: 'ci-99.build' });
    const bad = await call<Submitted>(client, subjects.client('alice', 'submit'), { pool: 'linux-x86_64', spec: SEXP, idempotencyKey: 'no spaces allowed' });
    expect(bad).toMatchObject({ ok: false, error: { code: 'malformed', message: expect.stringMatching(/idempotencyKey.*idempotency key is 1-128/) } });
  });

  it('fills the defaults, keeps a cache hint the client gave, and passes a scheduler rejection on', async () => {
    schedulerReply = (job) => reject('unknown-pool', `no pool ${job.pool}`);
    const reply = await call(client, subjects.client('bob', 'submit'), { pool: 'nowhere', spec: '((from cairn/busybox))', cacheHint: 'mine' });
    expect(reply).toEqual(reject('unknown-pool', 'no pool nowhere'));
    expect(forwarded).toEqual([
      expect.objectContaining({ client: 'bob', name: 'unnamed', urgent: false, secrets: [], outputs: [], timeoutSeconds: 3600, cacheHint: 'mine', steps: 1 }),
    ]);
  });

  it("refuses a missing, oversized or another client's context and forwards nothing", async () => {
    const spec = '((from cairn/busybox) (copy (src .) (dst /src)))';
    const absent = `sha256:${'3'.repeat(64)}`;
    const missing = rejection(await call(client, subjects.client('alice', 'submit'), { pool: 'p', spec, contextDigest: absent }));
    expect(missing.code).toBe('not-found');
    expect(missing.message).toContain(`no build context ${absent} of client alice in stream CAIRN_CONTEXTS`);

    // Bob's upload is his: alice naming its digest finds nothing.
    const bobs = await uploadContext(new TextEncoder().encode("bob's context"), 'bob');
    expect(rejection(await call(client, subjects.client('alice', 'submit'), { pool: 'p', spec, contextDigest: bobs })).code).toBe('not-found');
    expect((await call(client, subjects.client('bob', 'submit'), { pool: 'p', spec, contextDigest: bobs })).ok).toBe(true);
    forwarded.length = 0;

    const big = await uploadContext(new Uint8Array(MAX_CONTEXT + 1).fill(7));
    const tooLarge = rejection(await call(client, subjects.client('alice', 'submit'), { pool: 'p', spec, contextDigest: big }));
    expect(tooLarge.code).toBe('too-large');
    expect(tooLarge.message).toContain(`is ${MAX_CONTEXT + 1} bytes, more than the limit of ${MAX_CONTEXT}`);

    const badSpec = rejection(await call(client, subjects.client('alice', 'submit'), { pool: 'p', spec: '((from))' }));
    expect(badSpec.code).toBe('invalid-spec');
    const badPool = rejection(await call(client, subjects.client('alice', 'submit'), { pool: 'no.dots', spec }));
    expect(badPool).toMatchObject({ code: 'malformed' });
    expect(badPool.message).toMatch(/^submit: pool: /);
    expect(forwarded).toEqual([]);
  });

  it('says the scheduler is unavailable when nothing answers on the enqueue subject', async () => {
    standIn.unsubscribe();
    await client.flush();
    const reply = rejection(await call(client, subjects.client('alice', 'submit'), { pool: 'p', spec: '((from cairn/busybox))' }));
    expect(reply.code).toBe('unavailable');
    expect(reply.message).toContain(subjects.enqueue);
  });
});

describe('operations', () => {
  it('serves /healthz and /metrics with compiles, rejections by code and compile latency', async () => {
    const health = await fetch(`${service.httpUrl}/healthz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/cairn_spec_compiler_compiles_total\{request="compile"\} [1-9]/);
    expect(metrics).toMatch(/cairn_spec_compiler_rejections_total\{request="compile",code="invalid-spec"\} 2/);
    expect(metrics).toMatch(/cairn_spec_compiler_rejections_total\{request="submit",code="not-found"\} 2/);
    expect(metrics).toMatch(/cairn_spec_compiler_compile_seconds_count\{request="submit"\} [1-9]/);
  });
});
