import { describe, expect, it } from 'vitest';
import type { JobSubmission, Outcome } from '@cairn/contracts';
import { DEFAULT_CONFIG, SchedulerCore, SchedulerError, type Effect } from '../src/core/scheduler-core.js';
import type { JobRecord, WorkerRecord } from '../src/core/records.js';

const POOL = 'linux-x86_64';

function submission(client: string, over: Partial<JobSubmission> = {}): JobSubmission {
  return {
    client,
    pool: POOL,
    name: 'job',
    spec: '((from busybox))',
    urgent: false,
    secrets: [],
    outputs: [],
    timeoutSeconds: 600,
    cacheHint: '',
    steps: 1,
    ...over,
  };
}

const outcome = (state: Outcome['state'] = 'succeeded'): Outcome => ({ state, steps: [], artifacts: [], platform: 'linux', startedAt: 1, finishedAt: 2 });

/** A scheduler with workers registered, and helpers that play the workers' side. */
function cluster(workers: Record<string, number>, config = DEFAULT_CONFIG) {
  const core = new SchedulerCore(config);
  let now = 1_000_000;
  for (const [id, capacity] of Object.entries(workers)) {
    core.register({ id, pool: POOL, platform: 'linux', capacity, publicKey: 'k', freeBytes: 1e9, hints: [], running: [] }, now);
  }
  const assigns = (effects: Effect[]) => effects.filter((e): e is Extract<Effect, { kind: 'assign' }> => e.kind === 'assign');
  return {
    core,
    at: () => now,
    advance: (ms: number) => (now += ms),
    submit: (client: string, over: Partial<JobSubmission> = {}) => core.submit(submission(client, over), now).job,
    dispatch: () => assigns(core.dispatch(now)),
    finish: (job: JobRecord, state: Outcome['state'] = 'succeeded') => core.complete(job.worker!, job.id, job.lease!, outcome(state), now),
    beat: (worker: string) =>
      core.heartbeat(
        worker,
        { running: core.workers.get(worker)!.running.map((j) => ({ job: j, lease: core.jobs.get(j)!.lease! })), freeBytes: 1e9, refusing: false, hints: [] },
        now,
      ),
  };
}

describe('fair share between clients', () => {
  it('a client with 1,000 queued jobs does not starve a client with one', () => {
    const c = cluster({ w1: 1 });
    for (let i = 0; i < 1000; i++) c.submit('flood');
    // The flood's first job runs; the single job of the other client is next in line.
    const [first] = c.dispatch();
    c.advance(10);
    const lone = c.submit('lone');
    c.finish(first!.job);
    const [second] = c.dispatch();
    expect(second!.job.id).toBe(lone.id);
  });

  it('serves clients in proportion to their rates', () => {
    const c = cluster({ w1: 1 });
    c.core.setRate('fast', 3);
    for (let i = 0; i < 500; i++) c.submit('fast');
    for (let i = 0; i < 500; i++) c.submit('slow');
    const served = { fast: 0, slow: 0 };
    for (let i = 0; i < 400; i++) {
      const [a] = c.dispatch();
      served[a!.job.client as 'fast' | 'slow']++;
      c.finish(a!.job);
    }
    expect(served.fast).toBe(300);
    expect(served.slow).toBe(100);
  });

  it('an urgent job overtakes the queue', () => {
    const c = cluster({ w1: 1 });
    for (let i = 0; i < 50; i++) c.submit('a');
    const urgent = c.submit('b', { urgent: true });
    expect(c.dispatch()[0]!.job.id).toBe(urgent.id);
  });
});

describe('cache affinity', () => {
  it('sends a job to the worker that holds its hint while it has capacity', () => {
    const c = cluster({ w1: 2, w2: 2 });
    const first = c.submit('a', { cacheHint: 'h1' });
    const a = c.dispatch();
    const holder = a[0]!.worker.id;
    c.finish(first);
    c.submit('a', { cacheHint: 'h1' });
    c.submit('b', { cacheHint: 'h1' });
    const next = c.dispatch();
    expect(next.map((x) => x.worker.id)).toEqual([holder, holder]);
    expect(next.map((x) => x.affinity)).toEqual(['hit', 'hit']);
  });

  it('keeps a job briefly for its busy holder, then gives it to the least loaded worker', () => {
    const c = cluster({ w1: 1, w2: 1 });
    c.submit('a', { cacheHint: 'h1' });
    const holder = c.dispatch()[0]!.worker.id;
    const other = holder === 'w1' ? 'w2' : 'w1';
    const waiting = c.submit('b', { cacheHint: 'h1' });
    expect(c.dispatch()).toEqual([]); // held for the holder
    c.advance(DEFAULT_CONFIG.affinityWaitMs + 1);
    const [later] = c.dispatch();
    expect(later!.job.id).toBe(waiting.id);
    expect(later!.worker.id).toBe(other);
    expect(later!.affinity).toBe('miss');
  });

  it('without a holder, picks the least loaded worker', () => {
    const c = cluster({ w1: 4, w2: 2 });
    for (let i = 0; i < 3; i++) c.submit('a', { cacheHint: `x${i}` });
    const workers = c.dispatch().map((x) => x.worker.id);
    // 0/4 vs 0/2 -> w1; then 1/4 < 0/2? no: 0/2 = 0 < 0.25 -> w2; then 0.25 < 0.5 -> w1
    expect(workers).toEqual(['w1', 'w2', 'w1']);
  });
});

describe('leases', () => {
  it("a silent worker's job is requeued and runs on another worker; the dead worker's late result is refused", () => {
    const c = cluster({ w1: 1, w2: 1 });
    c.core.setWorkerFlag('w2', 'paused', true);
    const job = c.submit('a');
    expect(c.dispatch()[0]!.worker.id).toBe('w1');
    const lostLease = job.lease!;
    c.core.setWorkerFlag('w2', 'paused', false);
    c.advance(DEFAULT_CONFIG.leaseTtlMs / 2);
    c.beat('w2');
    c.advance(DEFAULT_CONFIG.leaseTtlMs / 2 + 1);
    const lost = c.core.tick(c.at());
    expect(job.state).toBe('queued');
    expect(job.failure).toMatch(/run 1 lost: worker w1 stopped answering/);
    expect(lost.some((e) => e.kind === 'publish-result')).toBe(false);
    const [again] = c.dispatch();
    expect(again!.worker.id).toBe('w2');
    expect(job.attempts).toBe(2);
    expect(c.core.complete('w1', job.id, lostLease, outcome(), c.at()).recorded).toBe(false);
    const done = c.finish(job);
    expect(done.recorded).toBe(true);
    expect(done.effects.filter((e) => e.kind === 'publish-result')).toHaveLength(1);
    // The terminal state is stored by the shell after the publish, in one write: no separate persist.
    expect(done.effects.filter((e) => e.kind === 'persist-job')).toHaveLength(0);
    // The same completion again (the worker retried): accepted; once the shell has the
    // result in the stream, no second one (before that, a repeat is deduplicated by job ID).
    job.resultPublished = true;
    const repeat = c.core.complete('w2', job.id, job.lease!, outcome(), c.at());
    expect(repeat.recorded).toBe(true);
    expect(repeat.effects.filter((e) => e.kind === 'publish-result')).toHaveLength(0);
  });

  it('says why a run went back to the queue: a requeued effect, and the reason kept on the job', () => {
    const c = cluster({ w1: 1 });
    const job = c.submit('a');
    c.dispatch();
    c.core.started('w1', job.id, job.lease!, c.at());
    c.advance(DEFAULT_CONFIG.leaseTtlMs + 1);
    const effects = c.core.tick(c.at());
    expect(effects.find((e) => e.kind === 'requeued')).toMatchObject({
      job: { id: job.id },
      attempt: 1,
      reason: expect.stringMatching(/worker w1 stopped answering/),
    });
    expect(job.requeues).toEqual([{ attempt: 1, reason: expect.stringMatching(/worker w1 stopped answering/), at: c.at(), worker: 'w1' }]);
  });

  it('a worker that restarted (a new key) loses its runs at once, with that reason', () => {
    const c = cluster({ w1: 1 });
    const job = c.submit('a');
    c.dispatch();
    c.core.assignmentAnswered(job.id, job.lease!, true, undefined);
    const { effects } = c.core.register(
      { id: 'w1', pool: POOL, platform: 'linux', capacity: 1, publicKey: 'k2', freeBytes: 1e9, hints: [], running: [] },
      c.at(),
    );
    expect(job.state).toBe('queued');
    expect(effects.find((e) => e.kind === 'requeued')).toMatchObject({ reason: 'worker w1 lost it (the worker restarted)' });
  });

  it('a draining worker that stops listing a run has handed it back: requeued without the grace', () => {
    const c = cluster({ w1: 1 });
    const job = c.submit('a');
    c.dispatch();
    c.core.assignmentAnswered(job.id, job.lease!, true, undefined);
    const { effects } = c.core.heartbeat('w1', { running: [], freeBytes: 1e9, refusing: true, hints: [], draining: true }, c.at());
    expect(job.state).toBe('queued');
    expect(effects.find((e) => e.kind === 'requeued')).toMatchObject({ reason: 'worker w1 shut down and handed it back' });
  });

  it('fails a job with the reason once it has lost maxAttempts runs', () => {
    const c = cluster({ w1: 1 });
    const job = c.submit('a');
    for (let i = 0; i < DEFAULT_CONFIG.maxAttempts; i++) {
      c.core.register({ id: 'w1', pool: POOL, platform: 'linux', capacity: 1, publicKey: 'k', freeBytes: 1e9, hints: [], running: [] }, c.at());
      expect(c.dispatch()).toHaveLength(1);
      c.advance(DEFAULT_CONFIG.leaseTtlMs + 1);
      c.core.tick(c.at());
    }
    expect(job.state).toBe('failed');
    expect(job.failure).toMatch(/gave up after 3 lost runs; last: worker w1 stopped answering/);
  });

  it('tells a worker to stop a job it runs under a lease that is no longer current', () => {
    const c = cluster({ w1: 1 });
    const job = c.submit('a');
    c.dispatch();
    const reply = c.core.heartbeat('w1', { running: [{ job: job.id, lease: 'stale' }], freeBytes: 1, refusing: false, hints: [] }, c.at());
    expect(reply.cancel).toEqual([job.id]);
  });

  it('a job whose assignment is still unanswered is not lost because a heartbeat does not list it yet', () => {
    const c = cluster({ w1: 1 });
    const job = c.submit('a');
    const [a] = c.dispatch();
    c.advance(DEFAULT_CONFIG.heartbeatMs * 3);
    c.core.heartbeat('w1', { running: [], freeBytes: 1, refusing: false, hints: [] }, c.at());
    expect(job.state).toBe('assigned');
    expect(job.attempts).toBe(1);
    // Once the worker has accepted it, a heartbeat without it means it was dropped.
    c.core.assignmentAnswered(job.id, a!.lease, true, undefined);
    c.core.heartbeat('w1', { running: [], freeBytes: 1, refusing: false, hints: [] }, c.at());
    expect(job.state).toBe('queued');
    expect(job.failure).toMatch(/worker w1 no longer runs it/);
  });

  it('a refused assignment goes back to the front without counting as a run', () => {
    const c = cluster({ w1: 1, w2: 1 });
    const first = c.submit('a');
    c.submit('a');
    const [a] = c.dispatch().filter((x) => x.job.id === first.id);
    c.core.assignmentAnswered(first.id, a!.lease, false, 'disk full');
    expect(first.state).toBe('queued');
    expect(first.attempts).toBe(0);
    expect(c.core.workers.get(a!.worker.id)!.refusing).toBe(true);
  });

  it('fails a job whose worker never reports past its timeout', () => {
    const c = cluster({ w1: 1 });
    const job = c.submit('a', { timeoutSeconds: 5 });
    c.dispatch();
    c.advance(5000 + DEFAULT_CONFIG.timeoutGraceMs + 1);
    c.beat('w1');
    const effects = c.core.tick(c.at());
    expect(job.state).toBe('failed');
    expect(job.failure).toMatch(/timed out/);
    expect(effects.some((e) => e.kind === 'cancel')).toBe(true);
  });
});

describe('cancel, pools and admin', () => {
  it('cancels a queued job at once and a running one through its worker', () => {
    const c = cluster({ w1: 1 });
    const running = c.submit('a');
    const queued = c.submit('a');
    c.dispatch();
    c.core.cancel('a', queued.id, c.at());
    expect(queued.state).toBe('cancelled');
    const effects = c.core.cancel('a', running.id, c.at());
    expect(effects.find((e) => e.kind === 'cancel')).toMatchObject({ worker: 'w1', lease: running.lease });
    expect(c.beat('w1').cancel).toEqual([running.id]);
    c.finish(running, 'cancelled');
    expect(running.state).toBe('cancelled');
    expect(() => c.core.cancel('a', running.id, c.at())).toThrow(/already cancelled/);
  });

  it("does not show or cancel another client's job", () => {
    const c = cluster({ w1: 1 });
    const job = c.submit('alice');
    expect(() => c.core.jobOf('bob', job.id)).toThrow(SchedulerError);
    expect(() => c.core.cancel('bob', job.id, c.at())).toThrow(/no job/);
  });

  it('rejects an unknown pool, naming the known ones', () => {
    const c = cluster({ w1: 1 });
    expect(() => c.core.submit(submission('a', { pool: 'macos-arm64' }), c.at())).toThrow(/unknown pool "macos-arm64"; known pools: linux-x86_64/);
  });

  it('gives nothing to a paused pool, a paused worker or a draining one', () => {
    const c = cluster({ w1: 1, w2: 1 });
    c.submit('a');
    c.core.setPoolPaused(POOL, true);
    expect(c.dispatch()).toEqual([]);
    c.core.setPoolPaused(POOL, false);
    c.core.setWorkerFlag('w1', 'paused', true);
    c.core.setWorkerFlag('w2', 'draining', true);
    expect(c.dispatch()).toEqual([]);
    c.core.setWorkerFlag('w2', 'draining', false);
    expect(c.dispatch()[0]!.worker.id).toBe('w2');
  });

  it('draining a pool drains each of its workers: they keep their runs and take nothing new', () => {
    const c = cluster({ w1: 1, w2: 1 });
    const running = c.submit('a');
    c.dispatch();
    c.core.drainPool(POOL);
    expect([...c.core.workers.values()].map((w) => w.draining)).toEqual([true, true]);
    c.submit('a');
    expect(c.dispatch()).toEqual([]);
    expect(running.state).toBe('assigned');
    expect(() => c.core.drainPool('macos-arm64')).toThrow(/unknown pool "macos-arm64"/);
  });

  it('keeps what a worker reports for operators: its version, and its last prune from each heartbeat', () => {
    const c = cluster({});
    c.core.register({ id: 'w9', pool: POOL, platform: 'linux', capacity: 1, publicKey: 'k', freeBytes: 1e9, hints: [], running: [], version: '1.2.3' }, c.at());
    expect(c.core.workers.get('w9')).toMatchObject({ version: '1.2.3' });
    expect(c.core.workers.get('w9')!.lastPruneAt).toBeUndefined();
    c.core.heartbeat('w9', { running: [], freeBytes: 1e9, refusing: false, hints: [], lastPruneAt: 12_345 }, c.at());
    expect(c.core.workers.get('w9')).toMatchObject({ version: '1.2.3', lastPruneAt: 12_345 });
    // Registering again (a reconnect) keeps the last prune it had heard of.
    c.core.register({ id: 'w9', pool: POOL, platform: 'linux', capacity: 1, publicKey: 'k', freeBytes: 1e9, hints: [], running: [], version: '1.2.3' }, c.at());
    expect(c.core.workers.get('w9')!.lastPruneAt).toBe(12_345);
  });

  it('forgetting a worker requeues its jobs', () => {
    const c = cluster({ w1: 1 });
    const job = c.submit('a');
    c.dispatch();
    c.core.forgetWorker('w1', c.at());
    expect(job.state).toBe('queued');
    expect(c.core.workers.has('w1')).toBe(false);
  });
});

describe('restart', () => {
  it('a new core restored from the stored records continues: queued jobs queue, leases stand', () => {
    const c = cluster({ w1: 1 });
    c.core.setRate('a', 2);
    const running = c.submit('a');
    c.dispatch();
    c.submit('b');
    const queued = c.submit('b', { urgent: true });
    const stored = JSON.parse(JSON.stringify({ jobs: [...c.core.jobs.values()], workers: [...c.core.workers.values()], settings: c.core.settings }));
    const fresh = new SchedulerCore();
    fresh.restore(stored.jobs as JobRecord[], stored.workers as WorkerRecord[], stored.settings, c.at());
    expect(fresh.rateOf('a')).toBe(2);
    expect(fresh.workers.get('w1')!.running).toEqual([running.id]);
    const r = fresh.jobs.get(running.id)!;
    expect(fresh.complete('w1', r.id, r.lease!, outcome(), c.at()).recorded).toBe(true);
    const next = fresh.dispatch(c.at()).find((e) => e.kind === 'assign');
    expect(next && next.kind === 'assign' && next.job.id).toBe(queued.id);
  });

  it('republishes a result that was recorded but not yet published when the scheduler stopped', () => {
    const c = cluster({ w1: 1 });
    const job = c.submit('a');
    c.dispatch();
    c.finish(job);
    const stored = JSON.parse(JSON.stringify([...c.core.jobs.values()])) as JobRecord[];
    const effects = new SchedulerCore().restore(stored, [], undefined, c.at());
    expect(effects.filter((e) => e.kind === 'publish-result').map((e) => (e as { job: JobRecord }).job.id)).toEqual([job.id]);
  });
});

describe('cache hints across a restart', () => {
  it('a restored scheduler still sends a job to the worker that built its hint', () => {
    const c = cluster({ w1: 1, w2: 1 });
    c.core.setWorkerFlag('w1', 'paused', true);
    const job = c.submit('a', { cacheHint: 'toolchain' });
    expect(c.dispatch()[0]!.worker.id).toBe('w2');
    c.finish(job);
    c.core.setWorkerFlag('w1', 'paused', false);
    const stored = c.core.tick(c.at()).filter((e) => e.kind === 'persist-worker');
    expect(stored.map((e) => (e as { worker: WorkerRecord }).worker.id)).toEqual(['w2']);
    const records = JSON.parse(JSON.stringify([...c.core.workers.values()])) as WorkerRecord[];
    const fresh = new SchedulerCore();
    fresh.restore([], records, { rates: {}, pausedPools: [], pools: [POOL] }, c.at());
    fresh.submit(submission('b', { cacheHint: 'toolchain' }), c.at());
    const assign = fresh.dispatch(c.at()).find((e) => e.kind === 'assign');
    expect(assign && assign.kind === 'assign' && [assign.worker.id, assign.affinity]).toEqual(['w2', 'hit']);
  });
});

describe('idempotency keys', () => {
  it('a repeated key gets the first job back, queues nothing, and survives a restart until the job expires', () => {
    const c = cluster({ w1: 1 });
    const first = c.core.submit(submission('alice', { idempotencyKey: 'ci-42' }), c.at());
    const again = c.core.submit(submission('alice', { idempotencyKey: 'ci-42' }), c.at());
    expect(again.job.id).toBe(first.job.id);
    expect(again.repeated).toBe(true);
    expect(again.effects).toEqual([]);
    expect(c.core.queue(POOL).length).toBe(1);
    // Keys are per client: bob's ci-42 is his own job.
    expect(c.core.submit(submission('bob', { idempotencyKey: 'ci-42' }), c.at()).job.id).not.toBe(first.job.id);
    // The same key for a different build is refused, naming the job it made.
    expect(() => c.core.submit(submission('alice', { idempotencyKey: 'ci-42', spec: '((from alpine))' }), c.at())).toThrow(
      new RegExp(`already made job ${first.job.id}`),
    );

    const restarted = new SchedulerCore(DEFAULT_CONFIG);
    restarted.restore([...c.core.jobs.values()], [], c.core.settings, c.at());
    expect(restarted.submit(submission('alice', { idempotencyKey: 'ci-42' }), c.at()).job.id).toBe(first.job.id);

    const [a] = c.dispatch();
    c.finish(a!.job);
    c.advance(10_000);
    a!.job.resultPublished = true;
    expect(c.core.expired(c.at(), 1000)).toContain(first.job.id);
    expect(c.core.submit(submission('alice', { idempotencyKey: 'ci-42' }), c.at()).job.id).not.toBe(first.job.id);
  });
});
