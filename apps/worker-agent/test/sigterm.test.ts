import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { assignment, logText, makeWorkerHost, readLog, SchedulerStandIn, spec, type WorkerHost } from './support.js';

const REPO = join(import.meta.dirname, '../../..');
const MAIN = join(REPO, 'apps/worker-agent/dist/main.js');

/** The built agent as its own process, the way it is deployed. */
describe('worker-agent process (node dist/main.js)', () => {
  let nats: RunningNats;
  let host: WorkerHost;
  let nc: NatsConnection;
  let child: ChildProcess | undefined;
  let output = '';

  beforeAll(async () => {
    // The process runs the compiled code: compile what the test is about to run.
    await promisify(execFile)('npx', ['tsc', '-b', 'apps/worker-agent'], { cwd: REPO });
    nats = await startNats();
    host = await makeWorkerHost();
    nc = await connectBus({ servers: nats.url, name: 'test-scheduler-stand-in' });
  }, 180_000);
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await nc?.close();
    await nats?.stop();
    await host?.cleanup();
  });

  it('on SIGTERM takes no new job, finishes the running one (outcome answered, log ended), then exits 0', async () => {
    const scheduler = new SchedulerStandIn(nc, 'proc-1').start();
    child = spawn('node', [MAIN], { env: host.env(nats.url, 'proc-1'), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child!.once('exit', (code, signal) => resolve({ code, signal })));
    await scheduler.waitFor('register', undefined, 30_000).catch((e: Error) => {
      throw new Error(`${e.message}\nagent output:\n${output}`);
    });

    const a = assignment({ spec: spec('(run (shell "echo drain-begins; sleep 3; echo drain-ends"))') });
    expect(await scheduler.assign(a)).toEqual({ ok: true, value: { accepted: true } });
    await readLog(nc, 'alice', a.job, 60_000, (chunks) => logText(chunks).includes('drain-begins'));
    child.kill('SIGTERM');
    await scheduler.waitFor('heartbeat', (m) => m.refusing === true, 10_000);
    const late = await scheduler.assign(assignment({ spec: spec('(run (shell "true"))') }));
    expect(late).toEqual({ ok: true, value: { accepted: false, reason: 'worker proc-1 is draining (shutting down)' } });

    expect(await exited, output).toEqual({ code: 0, signal: null });
    const { outcome } = await scheduler.outcome(a.job, 1000);
    expect(outcome.state).toBe('succeeded');
    const log = await readLog(nc, 'alice', a.job, 5000);
    expect(logText(log)).toContain('drain-begins\ndrain-ends\n');
    expect(log.at(-1)!.end).toBe('succeeded');
    scheduler.stop();
  });

  /** Starts the agent as `worker`, with a build running that would take a minute. */
  async function withLongBuild(
    worker: string,
    env: NodeJS.ProcessEnv = {},
  ): Promise<{ scheduler: SchedulerStandIn; proc: ChildProcess; job: string; exited: Promise<{ code: number | null; signal: string | null }> }> {
    const scheduler = new SchedulerStandIn(nc, worker).start();
    const proc = spawn('node', [MAIN], { env: { ...host.env(nats.url, worker), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    await scheduler.waitFor('register', undefined, 30_000);
    const a = assignment({ spec: spec('(run (shell "echo long-begins; sleep 60; echo long-ends"))') });
    expect(await scheduler.assign(a)).toEqual({ ok: true, value: { accepted: true } });
    await readLog(nc, 'alice', a.job, 60_000, (chunks) => logText(chunks).includes('long-begins'));
    return { scheduler, proc, job: a.job, exited };
  }

  it('a second SIGTERM during a drain cancels the running build and exits at once', async () => {
    const { scheduler, proc, exited } = await withLongBuild('proc-2');
    proc.kill('SIGTERM');
    await scheduler.waitFor('heartbeat', (m) => m.refusing === true, 10_000);
    const second = Date.now();
    proc.kill('SIGTERM');
    expect((await exited).code, output).toBe(1);
    expect(Date.now() - second).toBeLessThan(10_000);
    scheduler.stop();
  });

  it('SIGUSR2 during a drain hands the build back: no outcome, a heartbeat without it (draining), a last log line, exit 0', async () => {
    const { scheduler, proc, job, exited } = await withLongBuild('proc-3');
    proc.kill('SIGTERM');
    await scheduler.waitFor('heartbeat', (m) => m.refusing === true, 10_000);
    proc.kill('SIGUSR2');
    expect(await exited, output).toEqual({ code: 0, signal: null });
    await scheduler.waitFor('heartbeat', (m) => m.draining === true && Array.isArray(m.running) && m.running.length === 0, 1000);
    expect(scheduler.received.complete).toEqual([]);
    const log = await readLog(nc, 'alice', job, 5000, (chunks) => logText(chunks).includes('goes back to the queue'));
    expect(logText(log)).toMatch(/cairn: run 1 of job \S+ stopped on worker proc-3: .*; it goes back to the queue/);
    expect(log.some((c) => c.end !== undefined)).toBe(false);
    scheduler.stop();
  });

  // What a Kubernetes pod does before its terminationGracePeriodSeconds runs out (infra/k8s).
  it('a drain that outlasts CAIRN_DRAIN_TIMEOUT_MS hands the build back by itself and exits 0', async () => {
    const { scheduler, proc, job, exited } = await withLongBuild('proc-4', { CAIRN_DRAIN_TIMEOUT_MS: '1500' });
    proc.kill('SIGTERM');
    await scheduler.waitFor('heartbeat', (m) => m.refusing === true, 10_000);
    expect(await exited, output).toEqual({ code: 0, signal: null });
    expect(output).toContain('worker-agent: the drain took over 1500 ms: handing the running builds back to the scheduler');
    expect(scheduler.received.complete).toEqual([]);
    const log = await readLog(nc, 'alice', job, 5000, (chunks) => logText(chunks).includes('goes back to the queue'));
    expect(logText(log)).toMatch(/cairn: run 1 of job \S+ stopped on worker proc-4: .*; it goes back to the queue/);
    scheduler.stop();
  });
});
