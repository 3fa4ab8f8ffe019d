import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, connectBus, generateKeyPair, ok, putBlob, readBlob, reject, seal, subjects, type BatchAccepted } from '@cairn/contracts';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { startWorkerAgent, type RunningAgent } from '../src/index.js';
import { assignment, everyStoredMessage, logText, makeWorkerHost, readLog, SchedulerStandIn, spec, until, type WorkerHost } from './support.js';

describe('a worker-agent on a real NATS server and a real btrfs store', () => {
  let nats: RunningNats;
  let host: WorkerHost;
  let nc: NatsConnection;
  let scheduler: SchedulerStandIn;
  let worker: RunningAgent;

  beforeAll(async () => {
    nats = await startNats();
    host = await makeWorkerHost();
    nc = await connectBus({ servers: nats.url, name: 'test-scheduler-stand-in' });
    scheduler = new SchedulerStandIn(nc, 'w1').start();
    worker = await startWorkerAgent(host.env(nats.url, 'w1'));
  });
  afterAll(async () => {
    await worker?.abort();
    scheduler?.stop();
    await nc?.close();
    await nats?.stop();
    await host?.cleanup();
  });

  it('registers with its pool, capacity, platform, store and public key, then heartbeats', async () => {
    const reg = await scheduler.waitFor('register');
    expect(reg).toMatchObject({ worker: 'w1', pool: 'linux-x86_64', platform: 'linux-x86_64', capacity: 2, running: [], store: { kind: 'btrfs' } });
    expect((reg.store as { freeBytes: number }).freeBytes).toBeGreaterThan(0);
    expect(reg.publicKey).toMatch(/^[A-Za-z0-9+/=]{40,}$/);
    await scheduler.waitFor('heartbeat');
    expect(scheduler.received.heartbeat[0]).toMatchObject({ worker: 'w1', running: [], refusing: false });
  });

  it('runs a job: log chunks in order in the stream, an end chunk, and an outcome with step IDs', async () => {
    const a = assignment({ spec: spec('(run (shell "echo hello-from-worker")) (run (shell "echo second"))'), cacheHint: 'hint-hello' });
    expect(await scheduler.assign(a)).toEqual({ ok: true, value: { accepted: true } });
    const { outcome } = await scheduler.outcome(a.job);
    expect(outcome.state).toBe('succeeded');
    expect(outcome.steps.map((s) => [s.op.slice(0, 20), s.cached])).toEqual([
      ['(from cairn/busybox:', false],
      ['(run (shell "echo he', false],
      ['(run (shell "echo se', false],
    ]);
    for (const s of outcome.steps) expect(s.id).toMatch(/^[0-9a-f]{64}$/);
    expect(outcome.snapshotId).toBe(outcome.steps.at(-1)!.id);
    expect(outcome.platform).toBe('linux-x86_64');
    await scheduler.waitFor('started', (m) => m.job === a.job);
    const chunks = await readLog(nc, 'alice', a.job);
    expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i + 1));
    expect(chunks.at(-1)).toMatchObject({ end: 'succeeded', text: '' });
    expect(logText(chunks)).toMatch(/\/: \(run \(shell "echo hello-from-worker"\)\)\nhello-from-worker\n---> saved as "[0-9a-f]{64}"\n/);
    // The hint of a successful job goes out with a heartbeat.
    await scheduler.waitFor('heartbeat', (m) => (m.hints as string[]).includes('hint-hello'));
  });

  it('registers again, with all its hints, when a heartbeat reply says the scheduler forgot it', async () => {
    const before = scheduler.received.register.length;
    let forgotten = false;
    scheduler.handlers.heartbeat = () => {
      if (forgotten) return ok({ known: true, cancel: [] });
      forgotten = true;
      return ok({ known: false, cancel: [] });
    };
    const again = await scheduler.waitFor('register', (m) => scheduler.received.register.indexOf(m) >= before);
    expect(again.hints).toContain('hint-hello');
    expect(again.publicKey).toBe(scheduler.received.register[0]!.publicKey);
    scheduler.handlers.heartbeat = () => ok({ known: true, cancel: [] });
  });

  const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
  async function contextTar(files: Record<string, string>): Promise<Buffer> {
    const dir = await mkdir(join(host.dir, `ctx-${Date.now()}`), { recursive: true }).then((d) => d!);
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    const { stdout } = await promisify(execFile)('tar', ['-C', dir, '-cf', '-', '.'], { encoding: 'buffer' });
    return stdout;
  }

  it("builds with its client's context in a (copy ...) step, and refuses one whose bytes are not its name", async () => {
    const tar = await contextTar({ 'greeting.txt': 'hello from the context\n' });
    const digest = `sha256:${(await putBlob(nc, 'contexts', 'alice', [tar])).sha256}`;
    const a = assignment({ spec: spec('(copy (src greeting.txt) (dst /greeting.txt)) (run (shell "cat /greeting.txt"))'), contextDigest: digest });
    expect((await scheduler.assign(a)).ok).toBe(true);
    const { outcome } = await scheduler.outcome(a.job);
    expect(outcome.state, outcome.failure).toBe('succeeded');
    expect(outcome.steps.map((s) => s.op)).toEqual([
      '(from cairn/busybox:latest)',
      '(copy (src greeting.txt) (dst /greeting.txt))',
      '(run (shell "cat /greeting.txt"))',
    ]);
    expect(logText(await readLog(nc, 'alice', a.job))).toContain('hello from the context\n');

    // Other bytes under a name, written by hand in the blob layout (putBlob names by content).
    const forged = await contextTar({ 'greeting.txt': 'forged\n' });
    const forgedSha = sha256(await contextTar({ 'greeting.txt': 'the original\n' }));
    const forgedDigest = `sha256:${forgedSha}`;
    const js = jetstream(nc);
    await js.publish(`${subjects.blobsOf('contexts', 'alice')}.c.forged1`, forged);
    await js.publish(`${subjects.blobsOf('contexts', 'alice')}.m.${forgedSha}`, JSON.stringify({ size: forged.length, chunks: 1, upload: 'forged1' }));
    const b = assignment({ spec: spec('(copy (src greeting.txt) (dst /greeting.txt)) (run (shell "cat /greeting.txt"))'), contextDigest: forgedDigest });
    expect((await scheduler.assign(b)).ok).toBe(true);
    const refused = (await scheduler.outcome(b.job)).outcome;
    expect(refused.state).toBe('failed');
    expect(refused.failure).toBe(
      `context ${forgedDigest} of alice in stream CAIRN_CONTEXTS: its content has digest sha256:${sha256(forged)} (${forged.length} bytes), not its name: refused`,
    );
    expect(refused.steps).toEqual([]);
    const log = logText(await readLog(nc, 'alice', b.job));
    expect(log).not.toContain('forged');
    expect(log).toContain('refused');
  });

  it('gives a step its secret, but the value is in no log chunk, stream message, outcome or file left behind', async () => {
    const value = 'hunter2-very-secret-value\n';
    const a = assignment({
      spec: spec(
        '(run (secrets (x (target /run/secrets/x))) (shell "wc -c < /run/secrets/x; cat /run/secrets/x; cat /run/secrets/x | base64; echo \\"inline $(cat /run/secrets/x) end\\"; printf %s hunter2-very; sleep 0.3; echo -secret-value"))',
      ),
      secrets: [{ id: 'x', sealed: seal(scheduler.publicKey, Buffer.from(value)) }],
    });
    expect((await scheduler.assign(a)).ok).toBe(true);
    const complete = await scheduler.outcome(a.job);
    expect(complete.outcome.state, complete.outcome.failure).toBe('succeeded');
    const log = logText(await readLog(nc, 'alice', a.job));
    expect(log).toMatch(/^26$/m); // the step read all 26 bytes
    // The value, then its base64.
    expect(log).toContain('\n***\n***\ninline *** end');
    // Printed in two pieces, 300 ms apart: two chunks of output, still one mask.
    expect(log).toContain('\n***\n---> saved as');
    for (const secret of [value.trim(), Buffer.from(value).toString('base64')]) {
      expect(log).not.toContain(secret);
      expect(JSON.stringify(complete)).not.toContain(secret);
      for (const m of await everyStoredMessage(nc)) expect(m).not.toContain(secret);
      for (const verb of Object.values(scheduler.received)) expect(JSON.stringify(verb)).not.toContain(secret);
    }
    expect((await readdir(tmpdir())).filter((f) => f.startsWith(`cairn-job-${a.job}`))).toEqual([]);
  });

  it('cancels a running job on a cancel order, and on a heartbeat reply listing it', async () => {
    const a = assignment({ spec: spec('(run (shell "echo long-job-started; sleep 60"))') });
    expect((await scheduler.assign(a)).ok).toBe(true);
    await readLog(nc, 'alice', a.job, 60_000, (chunks) => logText(chunks).includes('long-job-started'));
    expect(await scheduler.cancel(a.job, a.lease, 'cancelled by alice')).toEqual({ ok: true, value: { cancelled: true } });
    const { outcome } = await scheduler.outcome(a.job, 20_000);
    expect(outcome).toMatchObject({ state: 'cancelled', failure: 'cancelled by alice' });
    expect((await readLog(nc, 'alice', a.job)).at(-1)!.end).toBe('cancelled');
    expect(await scheduler.cancel(a.job, a.lease, 'again')).toMatchObject({ ok: false, error: { code: 'not-found' } });

    const b = assignment({ spec: spec('(run (shell "echo other-long-job; sleep 60"))') });
    expect((await scheduler.assign(b)).ok).toBe(true);
    await readLog(nc, 'alice', b.job, 60_000, (chunks) => logText(chunks).includes('other-long-job'));
    scheduler.handlers.heartbeat = () => ok({ known: true, cancel: [b.job] });
    try {
      expect((await scheduler.outcome(b.job, 20_000)).outcome).toMatchObject({ state: 'cancelled', failure: 'cancelled by the scheduler' });
    } finally {
      scheduler.handlers.heartbeat = () => ok({ known: true, cancel: [] });
    }
  });

  it('stops a job whose started the scheduler rejects as a stale lease', async () => {
    scheduler.handlers.started = () => reject('conflict', 'lease l-old is stale: the job went to w2');
    try {
      const a = assignment({ spec: spec('(run (shell "sleep 60"))') });
      expect((await scheduler.assign(a)).ok).toBe(true);
      const { outcome } = await scheduler.outcome(a.job, 20_000);
      expect(outcome).toMatchObject({ state: 'cancelled', failure: 'the scheduler refused this lease: lease l-old is stale: the job went to w2' });
    } finally {
      scheduler.handlers.started = () => ok({ recorded: true });
    }
  });

  it('fails a job that runs past its timeout, saying so', async () => {
    const a = assignment({ spec: spec('(run (shell "sleep 60"))'), timeoutSeconds: 2 });
    const sent = Date.now();
    expect((await scheduler.assign(a)).ok).toBe(true);
    const { outcome } = await scheduler.outcome(a.job, 30_000);
    expect(outcome).toMatchObject({ state: 'failed', failure: 'timed out after 2 s' });
    expect(Date.now() - sent).toBeLessThan(15_000);
    const log = await readLog(nc, 'alice', a.job);
    expect(log.at(-1)!.end).toBe('failed');
    expect(logText(log)).toContain('timed out after 2 s');
  });

  it('rejects an assignment beyond its capacity, with the reason', async () => {
    const jobs = [1, 2].map((n) => assignment({ spec: spec(`(run (shell "echo filler-${n}; sleep 60"))`) }));
    for (const j of jobs) expect(await scheduler.assign(j)).toEqual({ ok: true, value: { accepted: true } });
    // The same assignment again (a retried request) is the same job, not a third one.
    expect(await scheduler.assign(jobs[0]!)).toEqual({ ok: true, value: { accepted: true } });
    const third = assignment({ spec: spec('(run (shell "true"))') });
    expect(await scheduler.assign(third)).toEqual({ ok: true, value: { accepted: false, reason: 'worker w1 is at capacity (2 of 2 builds running)' } });
    await scheduler.waitFor('heartbeat', (m) => (m.running as unknown[]).length === 2);
    for (const j of jobs) await scheduler.cancel(j.job, j.lease, 'test done');
    for (const j of jobs) expect((await scheduler.outcome(j.job, 20_000)).outcome.state).toBe('cancelled');
    expect(await scheduler.assign({ ...third, spec: 'not a spec' })).toMatchObject({ ok: true, value: { accepted: true } });
    expect((await scheduler.outcome(third.job)).outcome.failure).toMatch(/^invalid spec: spec:1:\d+: unexpected second S-expression/);
  });

  it('answers a batch of assignments one by one, as if each had come alone', async () => {
    const a = assignment({ spec: spec('(run (shell "echo batched; sleep 60"))') });
    const other = generateKeyPair();
    const b = assignment({ spec: spec('(run (shell "true"))'), secrets: [{ id: 'x', sealed: seal(other.publicKey, Buffer.from('v')) }] });
    // a, a again (a retried batch: the same job), b refused: each answered in its place.
    const reply = await call<BatchAccepted>(nc, subjects.toWorker('w1', 'assign-batch'), { assignments: [a, a, b] }, { timeoutMs: 5000 });
    expect(reply).toEqual({
      ok: true,
      value: {
        answers: [
          { accepted: true },
          { accepted: true },
          { accepted: false, reason: `secret "x" of job ${b.job} cannot be opened with worker w1's key (sealed for another key or altered)` },
        ],
      },
    });
    await scheduler.cancel(a.job, a.lease, 'test done');
    expect((await scheduler.outcome(a.job, 20_000)).outcome.state).toBe('cancelled');
  });

  it('answers a malformed assignment or cancel with the reason, and one with secrets it cannot open with a refusal', async () => {
    const bad = await call(nc, subjects.toWorker('w1', 'assign'), { job: 'not-a-job-id', spec: 42 });
    expect(bad).toMatchObject({ ok: false, error: { code: 'malformed' } });
    expect(!bad.ok && bad.error.message).toMatch(/^assign: job: a job ID looks like j-/);
    const raw = (await nc.request(subjects.toWorker('w1', 'cancel'), new Uint8Array([0xff, 0x7b]), { timeout: 5000 })).json<{
      response: { ok: boolean; error: { code: string } };
    }>();
    expect(raw.response).toMatchObject({ ok: false, error: { code: 'malformed' } });
    const other = generateKeyPair();
    const a = assignment({ spec: spec('(run (shell "true"))'), secrets: [{ id: 'x', sealed: seal(other.publicKey, Buffer.from('v')) }] });
    expect(await scheduler.assign(a)).toEqual({
      ok: true,
      value: { accepted: false, reason: `secret "x" of job ${a.job} cannot be opened with worker w1's key (sealed for another key or altered)` },
    });
    expect(worker.agent.runningJobs).toEqual([]);
  });

  it('exports outputs from the final snapshot into the artifact store, resolving symlinks inside the snapshot', async () => {
    const a = assignment({
      spec: spec('(run (shell "mkdir -p /out && echo artifact-bytes > /out/a.txt && ln -s /etc/passwd /out/passwd-link"))'),
      outputs: ['/out/a.txt', '/out/passwd-link'],
    });
    expect((await scheduler.assign(a)).ok).toBe(true);
    const { outcome } = await scheduler.outcome(a.job);
    expect(outcome.state, outcome.failure).toBe('succeeded');
    const content = Buffer.from('artifact-bytes\n');
    expect(outcome.artifacts[0]).toEqual({ path: '/out/a.txt', size: content.length, sha256: sha256(content) });
    // Stored under this worker's name, where the results-store reads a job's artifacts.
    const artifact = async (hex: string) => {
      const blob = await readBlob(nc, { store: 'artifacts', owner: 'w1', sha256: hex });
      const parts: Uint8Array[] = [];
      for await (const part of blob!.bytes) parts.push(part);
      return Buffer.concat(parts);
    };
    expect(await artifact(sha256(content))).toEqual(content);
    // The link points at the snapshot's /etc/passwd (busybox's two users), not the host's.
    const passwd = (await artifact(outcome.artifacts[1]!.sha256)).toString();
    expect(passwd).toBe('root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n');
    expect(passwd).not.toBe(await readFile('/etc/passwd', 'utf8'));

    const missing = assignment({ spec: a.spec, outputs: ['/out/nothing-here'] });
    expect((await scheduler.assign(missing)).ok).toBe(true);
    const failed = (await scheduler.outcome(missing.job)).outcome;
    expect(failed.state).toBe('failed');
    expect(failed.failure).toBe(`output /out/nothing-here of snapshot ${outcome.snapshotId}: "/out/nothing-here" does not exist in the snapshot`);
    expect(failed.steps.every((s) => s.cached)).toBe(true);
  });

  it('retries a complete that is not answered until the scheduler answers it', async () => {
    const attempts = new Map<string, number>();
    scheduler.handlers.complete = (data) => {
      const n = (attempts.get(data.job as string) ?? 0) + 1;
      attempts.set(data.job as string, n);
      return n < 3 ? undefined : ok({ recorded: true });
    };
    try {
      const a = assignment({ spec: spec('(run (shell "echo retried-outcome"))') });
      expect((await scheduler.assign(a)).ok).toBe(true);
      const log = await readLog(nc, 'alice', a.job);
      // The end chunk comes only after the outcome was answered, on the third attempt.
      expect(attempts.get(a.job)).toBe(3);
      expect(log.at(-1)!.end).toBe('succeeded');
      const sent = scheduler.received.complete.filter((m) => m.job === a.job);
      expect(sent).toHaveLength(3);
      expect(new Set(sent.map((m) => JSON.stringify(m))).size).toBe(1);
    } finally {
      scheduler.handlers.complete = () => ok({ recorded: true });
    }
  });

  it('carries a job through a NATS server restart: log complete and in order, outcome delivered', async () => {
    const a = assignment({ spec: spec('(run (shell "echo before-restart; sleep 3; echo after-restart"))') });
    expect((await scheduler.assign(a)).ok).toBe(true);
    await readLog(nc, 'alice', a.job, 60_000, (chunks) => logText(chunks).includes('before-restart'));
    await nats.restart(1000);
    const { outcome } = await scheduler.outcome(a.job, 60_000);
    expect(outcome.state, outcome.failure).toBe('succeeded');
    const log = await readLog(nc, 'alice', a.job);
    expect(log.map((c) => c.seq)).toEqual(log.map((_, i) => i + 1));
    expect(logText(log)).toMatch(/before-restart\nafter-restart\n/);
  });

  it('serves /healthz and /metrics with its jobs, outcomes, cache hits and free space', async () => {
    await until('a heartbeat after the restart', () => worker.agent.isRegistered);
    const health = await fetch(`${worker.service.httpUrl}/healthz`);
    expect(await health.json()).toEqual({ ok: true, checks: { 'nats-open': 'ok', nats: 'ok', jetstream: 'ok', store: 'ok', scheduler: 'ok' } });
    const metrics = await (await fetch(`${worker.service.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^cairn_worker_running_jobs 0$/m);
    expect(metrics).toMatch(/^cairn_worker_builds_total\{outcome="succeeded"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^cairn_worker_builds_total\{outcome="cancelled"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^cairn_worker_steps_total\{cached="true"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^cairn_worker_store_free_bytes [1-9]\d*$/m);
    expect(metrics).toMatch(/^cairn_worker_rejected_assignments_total\{reason="capacity"\} 1$/m);
  });
});
