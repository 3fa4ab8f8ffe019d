/**
 * The built worker-agent as its own process, logging JSON lines: a job runs under its
 * submission's trace ID, which its assignment carries, also when the scheduler hands
 * several jobs over in one assign-batch message (whose one header cannot name each
 * submission's trace). The worker's lines about the job and its calls for the job
 * (started, complete) carry that trace, and its lines (warnings too) the job's fields.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, connectBus, newTraceId, ok, reject, subjects, traceOf, withTrace, type BatchAccepted } from '@cairn/contracts';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { stopChild } from '../../../test/support/processes.js';
import { assignment, makeWorkerHost, SchedulerStandIn, spec, type WorkerHost } from './support.js';

const REPO = join(import.meta.dirname, '../../..');
const MAIN = join(REPO, 'apps/worker-agent/dist/main.js');
const WORKER = 'trace-1';

describe('a worker-agent process runs each job under its own trace', () => {
  let nats: RunningNats;
  let host: WorkerHost;
  let nc: NatsConnection;
  let scheduler: SchedulerStandIn;
  let child: ChildProcess | undefined;
  let output = '';
  /** The trace in the header of each started and complete call, by job. */
  const callTraces: { verb: string; job: string; trace: string | undefined }[] = [];
  let calls: Subscription | undefined;

  beforeAll(async () => {
    // The process runs the compiled code: compile what the test is about to run.
    await promisify(execFile)('npx', ['tsc', '-b', 'apps/worker-agent'], { cwd: REPO });
    nats = await startNats();
    host = await makeWorkerHost();
    nc = await connectBus({ servers: nats.url, name: 'test-scheduler-stand-in' });
    scheduler = new SchedulerStandIn(nc, WORKER).start();
    // Beside the stand-in (which answers), a plain subscriber that reads the headers.
    calls = nc.subscribe(`cairn.v1.sched.${WORKER}.*`, {
      callback: (_err, msg) => {
        const verb = msg.subject.split('.').at(-1)!;
        if (verb !== 'started' && verb !== 'complete') return;
        const { data } = msg.json<{ data: { job: string } }>();
        callTraces.push({ verb, job: data.job, trace: traceOf(msg.headers) });
      },
    });
    child = spawn('node', [MAIN], { env: host.env(nats.url, WORKER, { CAIRN_LOG_FORMAT: 'json' }), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await scheduler.waitFor('register', undefined, 30_000).catch((e: Error) => {
      throw new Error(`${e.message}\nagent output:\n${output}`);
    });
  }, 180_000);
  afterAll(async () => {
    if (child) await stopChild(child, 'SIGKILL');
    calls?.unsubscribe();
    scheduler?.stop();
    await nc?.close();
    await nats?.stop();
    await host?.cleanup();
  });

  /** The worker's JSON lines that name `job` in their job field. */
  const linesOf = (job: string) =>
    output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.job === job);

  it('gives each job of an assign-batch the trace its assignment carries, on its lines and its calls', async () => {
    const traces = [newTraceId(), newTraceId()];
    const jobs = traces.map((trace, i) => assignment({ spec: spec(`(run (shell "echo traced-${i}"))`), trace }));
    // The batch's own header names another trace, as a scheduler's dispatch may run under any request's.
    const batchTrace = newTraceId();
    const reply = await withTrace(batchTrace, () =>
      call<BatchAccepted>(nc, subjects.toWorker(WORKER, 'assign-batch'), { assignments: jobs }, { timeoutMs: 5000 }),
    );
    expect(reply).toEqual({ ok: true, value: { answers: [{ accepted: true }, { accepted: true }] } });
    for (const [i, a] of jobs.entries()) {
      expect((await scheduler.outcome(a.job)).outcome.state).toBe('succeeded');
      const ended = () => linesOf(a.job).find((l) => String(l.message).startsWith(`job ${a.job} (test) ended`));
      await expect.poll(ended, { timeout: 30_000, interval: 100 }).toBeDefined();
      const lines = linesOf(a.job);
      expect(lines.map((l) => String(l.message).replace(a.job, 'JOB'))).toEqual(['job JOB (test) started, run 1', 'job JOB (test) ended: succeeded']);
      for (const line of lines)
        expect(line).toMatchObject({ service: `worker-agent-${WORKER}`, job: a.job, client: 'alice', worker: WORKER, trace: traces[i] });
      expect(callTraces.filter((c) => c.job === a.job).map((c) => [c.verb, c.trace])).toEqual([
        ['started', traces[i]],
        ['complete', traces[i]],
      ]);
    }
    expect(output).not.toContain(batchTrace);
  });

  it('gives a job assigned alone the trace in its assignment', async () => {
    const trace = newTraceId();
    const a = assignment({ spec: spec('(run (shell "echo traced-alone"))'), trace });
    expect(await withTrace(newTraceId(), () => scheduler.assign(a))).toEqual({ ok: true, value: { accepted: true } });
    expect((await scheduler.outcome(a.job)).outcome.state).toBe('succeeded');
    const ended = () => linesOf(a.job).find((l) => String(l.message).includes('ended'));
    await expect.poll(ended, { timeout: 30_000, interval: 100 }).toBeDefined();
    expect(linesOf(a.job).map((l) => l.trace)).toEqual([trace, trace]);
  });

  it("names the job, its client and its trace on the worker's warnings about it", async () => {
    const trace = newTraceId();
    const a = assignment({ spec: spec('(run (shell "sleep 30"))'), trace, client: 'bob' });
    scheduler.handlers.started = () => reject('conflict', 'the lease is stale');
    try {
      expect(await scheduler.assign(a)).toEqual({ ok: true, value: { accepted: true } });
      expect((await scheduler.outcome(a.job)).outcome.state).toBe('cancelled');
    } finally {
      scheduler.handlers.started = () => ok({ recorded: true });
    }
    const warning = () => linesOf(a.job).find((l) => String(l.message).includes('started not recorded'));
    await expect.poll(warning, { timeout: 30_000, interval: 100 }).toBeDefined();
    expect(warning()).toMatchObject({ level: 'warn', job: a.job, client: 'bob', worker: WORKER, trace });
  });
});
