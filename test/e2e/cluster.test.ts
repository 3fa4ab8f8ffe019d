/**
 * The cluster's acceptance, end to end: real nats-server, scheduler, spec-compiler and
 * two worker-agents as processes, real runc builds on btrfs, the `cairn` command as a
 * user runs it.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildResult, call, JobEvent, streams, subjects, type JobStatus, type Submitted } from '@cairn/contracts';
import { BASE_IMAGE, POOL, startCluster, type Cluster } from '../support/cluster.js';

const SECRET = 'tr0ub4dor-and-3-horses';
let c: Cluster;
let work: string;

const quick = (tag: string, ops = '') => `((from ${BASE_IMAGE}) (shell /bin/sh -c) (run (shell "echo ${tag}")) ${ops})`;

async function submit(client: string, spec: string, extra: Record<string, unknown> = {}): Promise<string> {
  const reply = await call<Submitted>(c.nc, subjects.client(client, 'submit'), { pool: POOL, spec, name: 'e2e', ...extra }, { timeoutMs: 10_000 });
  if (!reply.ok) throw new Error(reply.error.message);
  return reply.value.job;
}

async function status(client: string, job: string): Promise<JobStatus> {
  const reply = await call<JobStatus>(c.nc, subjects.client(client, 'status'), { job }, { timeoutMs: 3000, retries: 20 });
  if (!reply.ok) throw new Error(reply.error.message);
  return reply.value;
}

async function finished(client: string, job: string, timeoutMs = 90_000): Promise<JobStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await status(client, job);
    if (['succeeded', 'failed', 'cancelled'].includes(s.state)) return s;
    if (Date.now() > deadline) throw new Error(`job ${job} still ${s.state} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every message of every stream (logs, results, KV buckets, object stores), as text. */
async function everyStoredMessage(): Promise<{ stream: string; data: string; text: string }[]> {
  const jsm = await jetstreamManager(c.nc);
  const out: { stream: string; data: string; text: string }[] = [];
  for await (const info of jsm.streams.list()) {
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(info.config.name, { seq }).catch(() => null);
      if (m) {
        const data = Buffer.from(m.data).toString('latin1');
        out.push({ stream: info.config.name, data, text: data + JSON.stringify(m.header ?? '') });
      }
    }
  }
  return out;
}

async function resultsFor(job: string): Promise<BuildResult[]> {
  return (await everyStoredMessage())
    .filter((m) => m.stream === streams.results.name)
    .map((m) => BuildResult.parse(JSON.parse(m.data)))
    .filter((r) => r.job === job);
}

/** Records job events (assignment order) while `body` runs. */
async function watchEvents(body: () => Promise<void>): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  const sub = c.nc.subscribe(subjects.jobEventsAll, { callback: (_e, m) => void events.push(JobEvent.parse(m.json())) });
  try {
    await body();
  } finally {
    sub.unsubscribe();
  }
  return events;
}

beforeAll(async () => {
  c = await startCluster({ workers: 2, capacity: 2 });
  work = join(c.dir, 'work');
  await mkdir(join(work, 'ctx'), { recursive: true });
  await writeFile(join(work, 'ctx', 'greeting.txt'), 'hello from the context\n');
  await writeFile(join(work, 'token'), SECRET);
}, 240_000);

afterAll(async () => {
  await c?.stop();
  // A bound for a hang: stopping gives each process up to 30 s to drain.
}, 60_000);

describe('the cluster, end to end', () => {
  it('a job submitted with cairn submit --follow streams its log, keeps its artifact, and its secret stays secret', async () => {
    const spec = join(work, 'build.spec');
    await writeFile(
      spec,
      `((from ${BASE_IMAGE})
        (shell /bin/sh -c)
        (copy (src greeting.txt) (dst /out/greeting.txt))
        (run (secrets (token (target /run/secrets/token))) (shell "echo secret-bytes: $(wc -c < /run/secrets/token); cat /run/secrets/token"))
        (run (shell "cp /out/greeting.txt /out/result.txt && echo built-it")))`,
    );
    const run = await c.cli([
      'submit',
      '--pool',
      POOL,
      '-f',
      spec,
      join(work, 'ctx'),
      '--secret',
      `token:${join(work, 'token')}`,
      '--output',
      '/out/result.txt',
      '--follow',
      '--json',
    ]);
    expect(run.stderr).toContain('built-it');
    expect(run.stderr).toContain(`secret-bytes: ${SECRET.length}`);
    expect(run.stderr + run.stdout).not.toContain(SECRET);
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as { job: string; state: string };
    expect(out.state).toBe('succeeded');
    // A late reader gets the whole log from the start.
    const late = await c.cli(['logs', out.job]);
    expect(late.stdout).toContain('built-it');
    const [result, ...more] = await resultsFor(out.job);
    expect(more).toEqual([]);
    expect(result!.artifacts).toEqual([{ path: '/out/result.txt', size: 23, sha256: createHash('sha256').update('hello from the context\n').digest('hex') }]);
    expect(result!.steps.length).toBeGreaterThanOrEqual(3);
    // The secret is nowhere: no stream, no bucket, no object, no service log.
    for (const m of await everyStoredMessage()) expect(m.text, `secret in stream ${m.stream}`).not.toContain(SECRET);
    for (const p of [c.scheduler, c.compiler, ...c.workers]) expect(p.output).not.toContain(SECRET);
  });

  it('jobs with the same cache hint land on the same worker while it has capacity', async () => {
    const first = await submit('alice', quick('affinity-1'), { cacheHint: 'shared-toolchain' });
    const home = (await finished('alice', first)).worker;
    const jobs = [
      await submit('alice', quick('affinity-2'), { cacheHint: 'shared-toolchain' }),
      await submit('bob', quick('affinity-3'), { cacheHint: 'shared-toolchain' }),
    ];
    for (const job of jobs) expect((await finished(job === jobs[0] ? 'alice' : 'bob', job)).worker).toBe(home);
  });

  it('an urgent job overtakes a queue', async () => {
    let urgent = '';
    const events = await watchEvents(async () => {
      expect((await c.cli(['admin', 'pool', 'pause', POOL])).code).toBe(0);
      const normal = [];
      for (let i = 0; i < 6; i++) normal.push(await submit('bob', quick(`queue-${i}`, '(run (shell "sleep 0.3"))')));
      urgent = await submit('carol', quick('urgent'), { urgent: true });
      expect((await c.cli(['admin', 'pool', 'unpause', POOL])).code).toBe(0);
      for (const job of normal) await finished('bob', job);
      await finished('carol', urgent);
    });
    const order = events.filter((e) => e.state === 'assigned').map((e) => e.job);
    expect(order[0]).toBe(urgent);
  });

  it("a flood from one client does not delay another client's job beyond its fair share", async () => {
    let lone = '';
    const events = await watchEvents(async () => {
      await c.cli(['admin', 'pool', 'pause', POOL]);
      const flood = [];
      for (let i = 0; i < 20; i++) flood.push(await submit('flood', quick(`flood-${i}`)));
      lone = await submit('lone', quick('lone'));
      await c.cli(['admin', 'pool', 'unpause', POOL]);
      await finished('lone', lone);
      for (const job of flood) await finished('flood', job);
    });
    const order = events.filter((e) => e.state === 'assigned').map((e) => e.job);
    // Equal rates: the lone job is first or second, not 21st.
    expect(order.indexOf(lone)).toBeLessThanOrEqual(1);
  });

  it('kill -9 of a worker mid-build: the job completes on the other worker and exactly one result is recorded', async () => {
    const job = await submit('alice', quick('killed', '(run (shell "echo started-long; sleep 4; echo finished-long"))'));
    let running: JobStatus;
    for (;;) {
      running = await status('alice', job);
      if (running.state === 'running') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 500));
    const victim = c.workers.find((w) => w.name === running.worker)!;
    await c.stopProcess(victim, 'SIGKILL');
    const done = await finished('alice', job);
    expect(done.state).toBe('succeeded');
    expect(done.worker).not.toBe(victim.name);
    expect(done.attempts).toBe(2);
    expect(await resultsFor(job)).toHaveLength(1);
    await c.restartProcess(victim);
    await c.waitForWorkers([victim.name]);
  });

  it('restarting the scheduler and then the NATS server mid-run loses no job and runs none twice to completion', async () => {
    const jobs: string[] = [];
    for (let i = 0; i < 6; i++) jobs.push(await submit('dave', quick(`restart-${i}`, '(run (shell "sleep 1"))')));
    await new Promise((r) => setTimeout(r, 700));
    await c.stopProcess(c.scheduler);
    await c.restartProcess(c.scheduler);
    await new Promise((r) => setTimeout(r, 1500));
    await c.nats.restart(500);
    for (const job of jobs) expect((await finished('dave', job, 120_000)).state).toBe('succeeded');
    for (const job of jobs) expect(await resultsFor(job)).toHaveLength(1);
  });

  it('bad specs, unknown pools and missing contexts get a clear rejection and change nothing', async () => {
    const before = (await everyStoredMessage()).filter((m) => m.stream === 'KV_cairn-jobs').length;
    const bad = join(work, 'bad.spec');
    await writeFile(bad, `((from ${BASE_IMAGE})\n (run (shel "x")))`);
    const badRun = await c.cli(['submit', '--pool', POOL, '-f', bad]);
    expect(badRun.code).toBe(1);
    expect(badRun.stderr).toMatch(/2:\d+.*shel/);
    const good = join(work, 'good.spec');
    await writeFile(good, quick('fine'));
    const unknown = await c.cli(['submit', '--pool', 'sparc-solaris', '-f', good]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown pool "sparc-solaris"; known pools: linux-x86_64/);
    const missing = await call(c.nc, subjects.client('alice', 'submit'), { pool: POOL, spec: quick('x'), contextDigest: `sha256:${'0'.repeat(64)}` });
    expect(missing).toMatchObject({ ok: false, error: { code: 'not-found' } });
    const unreachable = await c.cli(['status', 'j-abcdefgh12'], { env: { CAIRN_NATS: 'nats://127.0.0.1:1' } });
    expect(unreachable.code).toBe(3);
    expect((await everyStoredMessage()).filter((m) => m.stream === 'KV_cairn-jobs').length).toBe(before);
  });

  it("a job's step limits and step timeout reach its worker: a fork bomb stops at its pids limit, a sleeper at its timeout, each failure naming it", async () => {
    const bomb = join(work, 'bomb.spec');
    await writeFile(bomb, quick('bomb-started', '(run (shell "bomb() { bomb | bomb & }; bomb; sleep 1000"))'));
    const bombed = await c.cli(['submit', '--pool', POOL, '-f', bomb, '--pids', '128', '--follow', '--json'], { client: 'grace' });
    expect(bombed.code).toBe(1);
    expect(JSON.parse(bombed.stdout)).toMatchObject({ state: 'failed' });
    expect(bombed.stderr).toContain('failed: pids limit 128 reached');
    const sleeper = join(work, 'sleeper.spec');
    await writeFile(sleeper, quick('sleeper', '(run (shell "echo sleeping; sleep 1000"))'));
    const slept = await c.cli(['submit', '--pool', POOL, '-f', sleeper, '--step-timeout', '2s', '--json'], { client: 'grace' });
    const job = (JSON.parse(slept.stdout) as { job: string }).job;
    const status = await finished('grace', job, 60_000);
    expect(status.state).toBe('failed');
    expect(status.failure).toContain('failed: step timeout 2 s reached');
    const bad = await c.cli(['submit', '--pool', POOL, '-f', sleeper, '--memory', 'plenty'], { client: 'grace' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--memory: "plenty" is not a size');
  });

  it('cairn submit with the same idempotency key again returns the first job and queues nothing', async () => {
    const spec = join(work, 'keyed.spec');
    await writeFile(spec, quick('keyed'));
    const first = await c.cli(['submit', '--pool', POOL, '-f', spec, '--idempotency-key', 'ci-run-7', '--json'], { client: 'frank' });
    expect(first.code).toBe(0);
    const job = (JSON.parse(first.stdout) as { job: string }).job;
    const again = await c.cli(['submit', '--pool', POOL, '-f', spec, '--idempotency-key', 'ci-run-7'], { client: 'frank' });
    expect(again.code).toBe(0);
    expect(again.stdout.trim()).toBe(job);
    expect(again.stderr).toContain(`already submitted with idempotency key ci-run-7: ${job}`);
    // The key is reused for another build: refused, and the first job named.
    const other = join(work, 'keyed-other.spec');
    await writeFile(other, quick('keyed-other'));
    const clash = await c.cli(['submit', '--pool', POOL, '-f', other, '--idempotency-key', 'ci-run-7'], { client: 'frank' });
    expect(clash.code).toBe(1);
    expect(clash.stderr).toContain(`already made job ${job}`);
    expect((await finished('frank', job, 30_000)).state).toBe('succeeded');
    expect(await resultsFor(job)).toHaveLength(1);
  });

  it('Ctrl-C during cairn submit --follow stops following, leaves the job running and says how to cancel it (exit 130)', async () => {
    await writeFile(join(work, 'long.spec'), quick('interrupted', '(run (shell "echo long-started; sleep 30"))'));
    const r = await c.cli(['submit', '--pool', POOL, '-f', join(work, 'long.spec'), '--follow'], { client: 'erin', interruptWhen: /long-started/ });
    expect(r.code).toBe(130);
    const job = /cairn cancel (j-\S+)/.exec(r.stderr)?.[1];
    expect(r.stderr).toContain(`cairn logs ${job} --follow`);
    expect(r.stderr).not.toMatch(/Error|at .*\.js/);
    expect((await status('erin', job!)).state).toBe('running');
    // The hint works: following again prints the log from the start; cancelling ends it.
    expect((await c.cli(['logs', job!], { client: 'erin' })).stdout).toContain('long-started');
    expect((await c.cli(['cancel', job!], { client: 'erin' })).code).toBe(0);
    expect((await finished('erin', job!, 30_000)).state).toBe('cancelled');
  });

  it('Ctrl-C during cairn submit --follow --cancel-on-interrupt cancels the job; cairn logs --follow stops on Ctrl-C too', async () => {
    await writeFile(join(work, 'long2.spec'), quick('cancel-on-interrupt', '(run (shell "echo long2-started; sleep 30"))'));
    const submitted = await c.cli(['submit', '--pool', POOL, '-f', join(work, 'long2.spec'), '--follow', '--json'], {
      client: 'erin',
      interruptWhen: /long2-started/,
    });
    expect(submitted.code).toBe(130);
    const { job, state } = JSON.parse(submitted.stdout) as { job: string; state: string };
    expect(state).toBe('interrupted');
    const logs = await c.cli(['logs', job, '--follow', '--cancel-on-interrupt'], { client: 'erin', interruptWhen: /long2-started/ });
    // `logs` has no --cancel-on-interrupt: a usage error, the job untouched.
    expect(logs.code).toBe(2);
    const follow = await c.cli(['logs', job, '--follow'], { client: 'erin', interruptWhen: /long2-started/ });
    expect(follow.code).toBe(130);
    expect(follow.stderr).toContain(`cairn cancel ${job}`);
    expect((await status('erin', job)).state).toBe('running');
    await c.cli(['cancel', job], { client: 'erin' });
    expect((await finished('erin', job, 30_000)).state).toBe('cancelled');

    await writeFile(join(work, 'long3.spec'), quick('cancel-on-interrupt-3', '(run (shell "echo long3-started; sleep 30"))'));
    const cancelled = await c.cli(['submit', '--pool', POOL, '-f', join(work, 'long3.spec'), '--follow', '--cancel-on-interrupt'], {
      client: 'erin',
      interruptWhen: /long3-started/,
    });
    expect(cancelled.code).toBe(130);
    const job3 = /interrupted: (j-\S+)/.exec(cancelled.stderr)?.[1] ?? /cancel of (j-\S+)/.exec(cancelled.stderr)?.[1];
    expect(job3).toMatch(/^j-/);
    expect((await finished('erin', job3!, 30_000)).state).toBe('cancelled');
  });

  it('cairn cancel stops a running job and cairn status says so', async () => {
    const job = await submit('erin', quick('to-cancel', '(run (shell "sleep 30"))'));
    for (;;) {
      if ((await status('erin', job)).state === 'running') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const cancel = await c.cli(['cancel', job], { client: 'erin' });
    expect(cancel.code).toBe(0);
    expect((await finished('erin', job, 30_000)).state).toBe('cancelled');
    const shown = await c.cli(['status', job, '--json'], { client: 'erin' });
    expect(JSON.parse(shown.stdout)).toMatchObject({ job, state: 'cancelled' });
    // Another client cannot see it.
    expect((await c.cli(['status', job], { client: 'mallory' })).code).toBe(1);
  });
});
