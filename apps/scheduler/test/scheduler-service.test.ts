import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  answer,
  BuildResult,
  call,
  callOrThrow,
  connectBus,
  generateKeyPair,
  newTraceId,
  ok,
  open,
  seal,
  streams,
  subjects,
  traceOf,
  withTrace,
  type Assignment,
  type AssignmentBatch,
  type JobStatus,
  type JobSubmission,
  type KeyPair,
  type LogsPage,
  type Reply,
  type RunHistory,
  type WorkerInfo,
} from '@cairn/contracts';
import { startService, type RunningService } from '@cairn/service-kit';
import { SchedulerModule, schedulerConfigFromEnv } from '../src/index.js';
import { startNats, type RunningNats } from '../../../test/support/nats.js';

const POOL = 'linux-x86_64';

/**
 * The test's stand-in for a worker-agent: it registers, heartbeats on demand, and
 * accepts every assignment it is sent, alone or in a batch (unless told to take no
 * batches, as a worker-agent from before them), keeping them for the test to complete.
 */
class StandInWorker {
  readonly keys: KeyPair = generateKeyPair();
  readonly assignments: Assignment[] = [];
  /** How many assignments each message brought. */
  readonly messages: number[] = [];
  /** The trace ID in the header of each single assignment's message. */
  readonly headerTraces: (string | undefined)[] = [];
  private subs?: Subscription[];
  constructor(
    private readonly nc: NatsConnection,
    readonly id: string,
    private readonly options: { batches: boolean } = { batches: true },
  ) {}

  async register(capacity = 2, pool = POOL): Promise<void> {
    const take = (assignments: Assignment[]) => {
      this.assignments.push(...assignments);
      this.messages.push(assignments.length);
      return assignments.map(() => ({ accepted: true }));
    };
    this.subs ??= [
      this.nc.subscribe(subjects.toWorker(this.id, 'assign'), {
        callback: (_e, msg) => {
          this.headerTraces.push(traceOf(msg.headers));
          void answer(msg, (data) => ok(take([data as Assignment])[0]));
        },
      }),
      ...(this.options.batches
        ? [
            this.nc.subscribe(subjects.toWorker(this.id, 'assign-batch'), {
              callback: (_e, msg) => void answer(msg, (data) => ok({ answers: take((data as AssignmentBatch).assignments) })),
            }),
          ]
        : []),
    ];
    await callOrThrow(this.nc, subjects.toScheduler(this.id, 'register'), {
      worker: this.id,
      pool,
      platform: 'linux-x86_64',
      capacity,
      store: { kind: 'btrfs', freeBytes: 1e10, totalBytes: 2e10 },
      publicKey: this.keys.publicKey,
    });
  }

  async next(): Promise<Assignment> {
    const deadline = Date.now() + 10_000;
    while (this.assignments.length === 0) {
      if (Date.now() > deadline) throw new Error(`${this.id} got no assignment in 10 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.assignments.shift()!;
  }

  complete(a: Assignment, state: 'succeeded' | 'failed' = 'succeeded') {
    return call<{ recorded: boolean; reason?: string }>(
      this.nc,
      subjects.toScheduler(this.id, 'complete'),
      {
        worker: this.id,
        job: a.job,
        lease: a.lease,
        outcome: {
          state,
          steps: [{ stage: '', op: '(from busybox)', id: 'a'.repeat(64), cached: true, ms: 1 }],
          artifacts: [],
          platform: 'linux-x86_64',
          startedAt: Date.now() - 5,
          finishedAt: Date.now(),
        },
      },
      { timeoutMs: 3000, retries: 10 },
    );
  }
}

function submission(over: Partial<JobSubmission> = {}): JobSubmission {
  return {
    client: 'alice',
    pool: POOL,
    name: 'hello',
    spec: '((from busybox))',
    urgent: false,
    secrets: [],
    outputs: [],
    timeoutSeconds: 600,
    cacheHint: 'h',
    steps: 1,
    ...over,
  };
}

/** The results in the stream, each with the trace ID its message's header carries. */
async function results(nc: NatsConnection): Promise<(BuildResult & { trace: string | undefined })[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(streams.results.name);
  const out: (BuildResult & { trace: string | undefined })[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(streams.results.name, { seq }).catch(() => null);
    if (m) out.push({ ...BuildResult.parse(m.json()), trace: traceOf(m.header) });
  }
  return out;
}

describe('the scheduler service over a real NATS server', () => {
  let nats: RunningNats;
  let dir: string;
  let scheduler: RunningService;
  let nc: NatsConnection;
  const env = () => ({
    CAIRN_NATS: nats.url,
    CAIRN_SCHEDULER_KEY: join(dir, 'key.pem'),
    CAIRN_LOG_FORMAT: 'text',
    CAIRN_LEASE_TTL_MS: '1500',
    CAIRN_HEARTBEAT_MS: '300',
  });
  const start = () => startService({ name: 'scheduler', module: (bus) => SchedulerModule.forRoot(bus, schedulerConfigFromEnv(env())), env: env() });

  beforeAll(async () => {
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), 'cairn-sched-'));
    scheduler = await start();
    nc = await connectBus({ servers: nats.url, name: 'test' });
  });
  afterAll(async () => {
    await nc?.close();
    await scheduler?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('rejects a job for a pool no worker has registered, and malformed submissions', async () => {
    const unknown = await call(nc, subjects.enqueue, submission({ pool: 'windows-x86_64' }));
    expect(unknown).toMatchObject({ ok: false, error: { code: 'unknown-pool' } });
    const bad = await call(nc, subjects.enqueue, { client: 'alice', pool: 'a.b' });
    expect(bad).toMatchObject({ ok: false, error: { code: 'malformed' } });
    if (!bad.ok) expect(bad.error.message).toMatch(/pool: a pool name must be/);
  });

  it('hands a job to a worker with its secret re-sealed for that worker alone, and records one result', async () => {
    const w1 = new StandInWorker(nc, 'w1');
    await w1.register();
    const { publicKey } = await callOrThrow<{ publicKey: string }>(nc, subjects.schedulerKey, {});
    const secret = { id: 'token', sealed: seal(publicKey, Buffer.from('s3cret-value')) };
    const trace = newTraceId();
    const { job } = await withTrace(trace, () => callOrThrow<{ job: string }>(nc, subjects.enqueue, submission({ secrets: [secret] })));
    const a = await w1.next();
    expect(a.job).toBe(job);
    expect(open(w1.keys, a.secrets[0]!.sealed).toString()).toBe('s3cret-value');
    expect(() => open(generateKeyPair(), a.secrets[0]!.sealed)).toThrow();
    await callOrThrow(nc, subjects.toScheduler('w1', 'started'), { worker: 'w1', job, lease: a.lease });
    expect((await w1.complete(a)) as Reply<unknown>).toEqual({ ok: true, value: { recorded: true } });
    expect((await w1.complete(a)) as Reply<unknown>).toEqual({ ok: true, value: { recorded: true } });
    const status = await callOrThrow<{ state: string }>(nc, subjects.client('alice', 'status'), { job });
    expect(status.state).toBe('succeeded');
    // Bob may not see Alice's job.
    expect(await call(nc, subjects.client('bob', 'status'), { job })).toMatchObject({ ok: false, error: { code: 'not-found' } });
    await new Promise((r) => setTimeout(r, 300));
    // With the submission's trace ID, for the results-store to keep.
    expect((await results(nc)).filter((r) => r.job === job).map((r) => r.trace)).toEqual([trace]);
  });

  it('a worker cannot speak for another worker', async () => {
    const reply = await call(nc, subjects.toScheduler('w2', 'register'), {
      worker: 'w1',
      pool: POOL,
      platform: 'x',
      capacity: 1,
      store: { kind: 'btrfs', freeBytes: 1, totalBytes: 1 },
      publicKey: 'k',
    });
    expect(reply).toMatchObject({ ok: false, error: { code: 'forbidden' } });
  });

  it('requeues the job of a worker that goes silent, and refuses the silent worker its late result', async () => {
    const w3 = new StandInWorker(nc, 'w3');
    const w4 = new StandInWorker(nc, 'w4');
    await w3.register(1);
    await callOrThrow(nc, subjects.admin('worker-pause'), { worker: 'w1' });
    const { job } = await callOrThrow<{ job: string }>(nc, subjects.enqueue, submission({ cacheHint: 'lost-one' }));
    const first = await w3.next();
    expect(first.job).toBe(job);
    await w4.register(1);
    // w4 heartbeats; w3 is silent past the lease TTL.
    const beat = setInterval(
      () =>
        void call(nc, subjects.toScheduler('w4', 'heartbeat'), {
          worker: 'w4',
          running: w4.assignments.map((x) => ({ job: x.job, lease: x.lease })),
          freeBytes: 1e9,
        }),
      300,
    );
    try {
      const second = await w4.next();
      expect(second.job).toBe(job);
      expect(second.attempt).toBe(2);
      expect(await w3.complete(first)).toMatchObject({ ok: true, value: { recorded: false } });
      expect(await w4.complete(second)).toMatchObject({ ok: true, value: { recorded: true } });
    } finally {
      clearInterval(beat);
    }
    await new Promise((r) => setTimeout(r, 300));
    const mine = (await results(nc)).filter((r) => r.job === job);
    expect(mine).toHaveLength(1);
    expect(mine[0]!.worker).toBe('w4');
    expect(mine[0]!.attempts).toBe(2);

    // The log is the chunks of the worker that ran each run: w3's of run 1, w4's of run 2.
    // Chunks in another worker's subject (NATS stops a worker publishing those; a worker
    // of the other run is not stopped) are not the job's log.
    const js = jetstream(nc);
    const chunk = (worker: string, attempt: number, seq: number, text: string, end?: string) =>
      js.publish(subjects.log('alice', job, worker), JSON.stringify({ job, attempt, seq, text, ...(end ? { end } : {}) }));
    await chunk('w3', 1, 1, 'run 1 on w3\n');
    await chunk('w4', 1, 1, 'forged by w4 into run 1\n');
    await chunk('w4', 2, 1, 'run 2 on w4\n');
    await chunk('w1', 2, 2, 'forged by w1: all tests passed\n', 'succeeded');
    await chunk('w4', 2, 2, 'done\n', 'succeeded');
    const page = await callOrThrow<LogsPage & RunHistory>(nc, subjects.client('alice', 'logs'), { job });
    expect(page.chunks.map((c) => c.text)).toEqual(['run 1 on w3\n', 'run 2 on w4\n', 'done\n']);
    expect(page).toMatchObject({ attempts: 2, worker: 'w4', requeues: [{ attempt: 1, worker: 'w3' }] });
    expect(await callOrThrow<JobStatus>(nc, subjects.client('alice', 'status'), { job })).toMatchObject({
      attempts: 2,
      worker: 'w4',
      requeues: [{ attempt: 1, worker: 'w3' }],
    });
  });

  it('keeps queued jobs, rates and pause state across a scheduler restart and a NATS restart', async () => {
    // w3 and w4 (silent since the test before) would be restored as connected for one
    // lease TTL and could take the job before w5: the job must be w5's to take.
    for (const worker of ['w3', 'w4']) await callOrThrow(nc, subjects.admin('worker-forget'), { worker });
    await callOrThrow(nc, subjects.admin('client-rate'), { client: 'carol', rate: 5 });
    await callOrThrow(nc, subjects.admin('pool-pause'), { pool: POOL });
    const { job } = await callOrThrow<{ job: string }>(nc, subjects.enqueue, submission({ client: 'carol' }));
    await scheduler.close();
    await nats.restart();
    scheduler = await start();
    const clients = await callOrThrow<{ client: string; rate: number; queued: number }[]>(nc, subjects.admin('clients'), {}, { timeoutMs: 3000, retries: 10 });
    expect(clients.find((c) => c.client === 'carol')).toMatchObject({ rate: 5, queued: 1 });
    const pools = await callOrThrow<{ pool: string; paused: boolean; queued: number }[]>(nc, subjects.admin('pools'), {});
    expect(pools.find((p) => p.pool === POOL)).toMatchObject({ paused: true, queued: 1 });
    const w5 = new StandInWorker(nc, 'w5');
    await w5.register();
    await callOrThrow(nc, subjects.admin('pool-unpause'), { pool: POOL });
    expect((await w5.next()).job).toBe(job);
  });

  it("lets an operator drain a pool, cancel any client's job, and undo the drain by unpausing the pool", async () => {
    await callOrThrow(nc, subjects.admin('pool-drain'), { pool: POOL });
    const drained = await callOrThrow<WorkerInfo[]>(nc, subjects.admin('workers'), {});
    expect(drained.filter((w) => w.pool === POOL).every((w) => w.draining)).toBe(true);
    const { job } = await callOrThrow<{ job: string }>(nc, subjects.enqueue, submission({ client: 'dave' }));
    expect(await callOrThrow<JobStatus>(nc, subjects.admin('job-cancel'), { job })).toMatchObject({ job, client: 'dave', state: 'cancelled' });
    expect(await call(nc, subjects.admin('job-cancel'), { job })).toMatchObject({ ok: false, error: { code: 'conflict' } });
    expect(await call(nc, subjects.admin('pool-drain'), { pool: 'nowhere' })).toMatchObject({ ok: false, error: { code: 'not-found' } });
    await callOrThrow(nc, subjects.admin('pool-unpause'), { pool: POOL });
    const undrained = await callOrThrow<WorkerInfo[]>(nc, subjects.admin('workers'), {});
    expect(undrained.filter((w) => w.pool === POOL).some((w) => w.draining)).toBe(false);
  });

  it('hands a worker its jobs for free slots in one message, and one at a time to a worker that takes no batches, each with its own trace', async () => {
    const pool = 'batch-x86_64';
    // Each job submitted under a trace of its own, as `cairn submit` does.
    const traces = new Map<string, string>();
    const enqueue = async (n: number) => {
      const jobs: string[] = [];
      for (let i = 0; i < n; i++) {
        const trace = newTraceId();
        const { job } = await withTrace(trace, () => callOrThrow<{ job: string }>(nc, subjects.enqueue, submission({ pool, name: `batch-${i}` })));
        traces.set(job, trace);
        jobs.push(job);
      }
      return jobs.sort();
    };
    const taken = async (w: StandInWorker, n: number) => {
      const out: Assignment[] = [];
      for (let i = 0; i < n; i++) out.push(await w.next());
      return out;
    };
    const w6 = new StandInWorker(nc, 'w6');
    await w6.register(3, pool);
    await callOrThrow(nc, subjects.admin('pool-pause'), { pool });
    const three = await enqueue(3);
    await callOrThrow(nc, subjects.admin('pool-unpause'), { pool });
    const batch = await taken(w6, 3);
    expect(batch.map((a) => a.job).sort()).toEqual(three);
    expect(w6.messages).toEqual([3]);
    // One message, three submissions: each assignment carries its own job's trace.
    expect(batch.map((a) => [a.job, a.trace])).toEqual(batch.map((a) => [a.job, traces.get(a.job)]));
    expect(new Set(batch.map((a) => a.trace)).size).toBe(3);
    for (const a of batch) expect(await w6.complete(a)).toMatchObject({ ok: true, value: { recorded: true } });

    await callOrThrow(nc, subjects.admin('worker-pause'), { worker: 'w6' });
    await callOrThrow(nc, subjects.admin('pool-pause'), { pool });
    const w7 = new StandInWorker(nc, 'w7', { batches: false });
    await w7.register(2, pool);
    const two = await enqueue(2);
    await callOrThrow(nc, subjects.admin('pool-unpause'), { pool });
    const singles = await taken(w7, 2);
    expect(singles.map((a) => a.job).sort()).toEqual(two);
    expect(w7.messages).toEqual([1, 1]);
    // Sent alone (here while the pool-unpause request was handled, under its trace): the
    // job's trace in the body and in the header.
    expect(singles.map((a) => [a.job, a.trace])).toEqual(singles.map((a) => [a.job, traces.get(a.job)]));
    expect(w7.headerTraces).toEqual(singles.map((a) => traces.get(a.job)));
    // Taken, not refused: both stay with w7.
    for (const job of two)
      expect(await callOrThrow<JobStatus>(nc, subjects.client('alice', 'status'), { job })).toMatchObject({ state: 'assigned', worker: 'w7', attempts: 1 });
  });

  it('exports the age of the oldest queued job per pool, 0 for a pool whose queue is empty', async () => {
    const pool = 'age-x86_64';
    const metric = async (p: string) => {
      const text = await (await fetch(`${scheduler.httpUrl}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`cairn_scheduler_oldest_queued_seconds{pool="${p}"} `));
      return line === undefined ? undefined : Number(line.split(' ')[1]);
    };
    // The pool is known by its worker; paused, it leaves the job queued.
    await new StandInWorker(nc, 'w8').register(1, pool);
    await callOrThrow(nc, subjects.admin('pool-pause'), { pool });
    const started = Date.now();
    const { job } = await callOrThrow<{ job: string }>(nc, subjects.enqueue, submission({ pool, name: 'waits' }));
    await new Promise((r) => setTimeout(r, 1_200));
    const age = await metric(pool);
    expect(age).toBeGreaterThanOrEqual(1);
    expect(age).toBeLessThanOrEqual((Date.now() - started) / 1000);
    await callOrThrow(nc, subjects.client('alice', 'cancel'), { job });
    expect(await metric(pool)).toBe(0);
  });

  it('serves /metrics with queue, job, worker and affinity figures', async () => {
    const text = await (await fetch(`${scheduler.httpUrl}/metrics`)).text();
    for (const name of [
      'cairn_scheduler_queue_length',
      'cairn_scheduler_jobs',
      'cairn_scheduler_workers',
      'cairn_scheduler_worker_load',
      'cairn_scheduler_assignment_latency_seconds_bucket',
      'cairn_scheduler_affinity_total',
    ]) {
      expect(text).toContain(name);
    }
  });
});
