/**
 * A standby scheduler: a second scheduler process against the same NATS waits while the
 * first leads, takes over when the leader is killed (within the leadership TTL) or stops
 * cleanly (at once), and the jobs in flight finish with exactly one result each. And a
 * scheduler whose NATS restarts while it starts waits that out instead of ending.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildResult, call, streams, subjects, type JobStatus, type Submitted } from '@cairn/contracts';
import { TTL_MS } from '../../apps/scheduler/src/leadership.js';
import { BASE_IMAGE, POOL, startCluster, type Cluster, type ServiceProcess } from '../support/cluster.js';

let c: Cluster;

const spec = (tag: string) => `((from ${BASE_IMAGE}) (shell /bin/sh -c) (run (shell "echo ${tag}; sleep 1")))`;

async function submit(tag: string): Promise<string> {
  const reply = await call<Submitted>(
    c.nc,
    subjects.client('alice', 'submit'),
    { pool: POOL, spec: spec(tag), name: 'standby' },
    { timeoutMs: 5000, retries: 30 },
  );
  if (!reply.ok) throw new Error(reply.error.message);
  return reply.value.job;
}

async function finished(job: string, timeoutMs = 60_000): Promise<JobStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reply = await call<JobStatus>(c.nc, subjects.client('alice', 'status'), { job }, { timeoutMs: 2000, retries: 10 });
    if (reply.ok && ['succeeded', 'failed', 'cancelled'].includes(reply.value.state)) return reply.value;
    if (Date.now() > deadline) throw new Error(`job ${job} not finished after ${timeoutMs / 1000} s: ${JSON.stringify(reply)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function resultCounts(jobs: readonly string[]): Promise<number[]> {
  const jsm = await jetstreamManager(c.nc);
  const info = await jsm.streams.info(streams.results.name);
  const seen = new Map<string, number>();
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(streams.results.name, { seq }).catch(() => null);
    if (!m) continue;
    const r = BuildResult.parse(m.json());
    seen.set(r.job, (seen.get(r.job) ?? 0) + 1);
  }
  return jobs.map((j) => seen.get(j) ?? 0);
}

async function outputSays(p: ServiceProcess, pattern: RegExp, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!pattern.test(p.output)) {
    if (Date.now() - started > timeoutMs) throw new Error(`${p.name} did not log ${pattern} in ${timeoutMs / 1000} s:\n${p.output.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - started;
}

beforeAll(async () => {
  c = await startCluster({ workers: 2, capacity: 2, schedulerEnv: { CAIRN_SCHEDULER_ID: 'sched-a' } });
  await c.waitForWorkers(['w1', 'w2']);
});

afterAll(async () => {
  await c?.stop();
  // A bound for a hang: stopping gives each process up to 30 s to drain.
}, 60_000);

describe('a standby scheduler', () => {
  it('waits while the leader runs, takes over when it is killed, and the jobs in flight finish once', async () => {
    const standby = c.spawnLike(c.scheduler, 'scheduler-b', { CAIRN_SCHEDULER_ID: 'sched-b' });
    await outputSays(standby, /standing by: sched-a\//, 20_000);
    // The standby serves nothing: every answer comes from the leader.
    expect(standby.output).not.toMatch(/"ready":true/);

    const before = [await submit('before-1'), await submit('before-2'), await submit('before-3')];
    await c.stopProcess(c.scheduler, 'SIGKILL');
    const tookOver = await outputSays(standby, /leading this cluster's scheduling as sched-b\//, TTL_MS + 10_000);
    expect(tookOver).toBeLessThan(TTL_MS + 10_000);
    await outputSays(standby, /"ready":true/, 20_000);

    const after = await submit('after-failover');
    for (const job of [...before, after]) expect((await finished(job)).state).toBe('succeeded');
    expect(await resultCounts([...before, after])).toEqual([1, 1, 1, 1]);

    // A clean stop hands over at once: the old leader, started again, stands by and then leads.
    await c.restartProcess(c.scheduler);
    await outputSays(c.scheduler, /standing by: sched-b\//, 20_000);
    await c.stopProcess(standby, 'SIGTERM');
    const handover = await outputSays(c.scheduler, /leading this cluster's scheduling as sched-a\//, 10_000);
    expect(handover).toBeLessThan(5_000);
    const last = await submit('after-handover');
    expect((await finished(last)).state).toBe('succeeded');
    expect(await resultCounts([last])).toEqual([1]);
  });

  it('a leader cut off from NATS past the step-down time stops by itself (exit 75), and leads again once it can', async () => {
    const exited = new Promise<number | null>((r) => c.scheduler.child.once('exit', (code) => r(code)));
    await c.nats.restart(6_000);
    expect(await exited).toBe(75);
    expect(c.scheduler.output).toMatch(/stepping down: could not renew the leadership/);
    await c.restartProcess(c.scheduler);
    await outputSays(c.scheduler, /leading this cluster's scheduling as sched-a\//, TTL_MS + 10_000);
    const job = await submit('after-partition');
    expect((await finished(job)).state).toBe('succeeded');
  });

  it('a scheduler whose NATS restarts while it starts (opening its buckets) waits it out and serves, without a supervisor', async () => {
    // Found in CI: a JetStream request timed out in that window and the scheduler exited 1.
    // NATS goes down once as the leadership is taken (the streams are being made), once as
    // Nest starts (the scheduler's buckets are opened next).
    for (const moment of ["leading this cluster's scheduling as", 'Starting Nest application']) {
      await c.stopProcess(c.scheduler, 'SIGTERM');
      await c.restartProcess(c.scheduler);
      const pid = c.scheduler.child.pid;
      await outputSays(c.scheduler, new RegExp(`leading this cluster's scheduling as sched-a/${pid}/`), TTL_MS + 10_000);
      await outputSays(c.scheduler, new RegExp(`${pid}[^\n]*${moment}|${moment} sched-a/${pid}/`), 20_000);
      await c.nats.restart(500);
      await outputSays(c.scheduler, new RegExp(`"ready":true.*"leader":"sched-a/${pid}/`), 60_000);
      expect(c.scheduler.child.exitCode, c.scheduler.output.slice(-3000)).toBeNull();
      const job = await submit(`after-restart-at-start-${pid}`);
      expect((await finished(job)).state).toBe('succeeded');
      expect(c.scheduler.child.pid).toBe(pid);
    }
  });
});
