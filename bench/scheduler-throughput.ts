/**
 * Scheduler throughput and submit-to-assignment latency with simulated workers (issue 5).
 * Targets: 5,000 assignments/s; p99 under 20 ms at 1,000 jobs/s offered.
 *
 *   npx tsx bench/scheduler-throughput.ts [--workers 200] [--capacity 4] [--jobs 20000]
 *                                         [--rates 250,500,1000] [--seconds 10] [--profile]
 *
 * Processes: nats-server (JetStream, file storage), the scheduler (`node
 * apps/scheduler/dist/main.js`, built first), a trivial responder for the baseline, and
 * this one: the load generator and all simulated workers (so submit and assignment
 * timestamps come from one clock). Jobs go straight to `subjects.enqueue` as the
 * spec-compiler would forward them; the spec-compiler is not in the path.
 * Simulated workers speak the real protocol (register, heartbeats with their leases,
 * answer assignments, `started`, `complete`) and build nothing: a job completes as soon
 * as its `started` is answered. Jobs carry no cache hint (affinity has its own benchmark).
 *
 * Baseline (same run, same machine): a request/reply round trip to a trivial responder
 * in another process, answered in the same envelope (`call`/`answer`); a JetStream KV put
 * of a job-sized record; and the two chained (the least a durable assignment costs: the
 * job's state stored, then the worker asked), each as a max rate (200 in flight) and as
 * latency at 1,000/s offered.
 *
 * --profile runs the scheduler under `node --cpu-prof` and prints where its CPU goes.
 *
 * --baseline REV measures another revision's scheduler against this tree's in the same
 * run instead (the scheduler of REV compiled under tmp/, see baselineScheduler): --rounds
 * rounds, each starting both afresh in turn (the order alternating), each a max rate of
 * --jobs queued jobs and the latency at 1,000/s offered for --seconds; prints every
 * round and the medians. On a machine shared with other work only such side-by-side
 * figures compare. --candidate REV measures REV's scheduler in place of this tree's (a
 * commit, when the working tree holds other people's unfinished changes).
 */
import { mkdtemp } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  admin,
  baselineScheduler,
  buildScheduler,
  busBaseline,
  cpuSeconds,
  enqueue,
  enqueueAll,
  fmtMs,
  fmtRate,
  jobWrites,
  POOL,
  profileByPackage,
  profileTop,
  sleep,
  startEnv,
  startWorkers,
  submission,
  summary,
  table,
  until,
  writeCalls,
  type Env,
  type SimWorker,
} from './scheduler-support.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '200' },
    capacity: { type: 'string', default: '4' },
    jobs: { type: 'string', default: '20000' },
    rates: { type: 'string', default: '250,500,1000' },
    seconds: { type: 'string', default: '10' },
    profile: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    baseline: { type: 'string' },
    candidate: { type: 'string' },
    rounds: { type: 'string', default: '5' },
  },
});
const WORKERS = Number(values.workers);
const CAPACITY = Number(values.capacity);
const JOBS = Number(values.jobs);
const RATES = values.rates!.split(',').map(Number);
const TARGET_RATE = 1000;
const SECONDS = Number(values.seconds);
const command = `npx tsx bench/scheduler-throughput.ts ${process.argv.slice(2).join(' ')}`.trim();
const clients = ['alice', 'bob', 'carol', 'dave'];

/** The simulated workers and what they have seen. */
interface Cluster {
  readonly workers: SimWorker[];
  readonly submittedAt: Map<string, number>;
  readonly latencies: number[];
  assigned: number;
  completed: number;
  lastAssign: number;
}

async function startCluster(env: Env): Promise<Cluster> {
  const cluster: Cluster = { workers: [], submittedAt: new Map(), latencies: [], assigned: 0, completed: 0, lastAssign: 0 };
  cluster.workers.push(
    ...(await startWorkers(env.workerBus, {
      count: WORKERS,
      capacity: CAPACITY,
      onAssign: ({ assignment, at }) => {
        cluster.assigned++;
        cluster.lastAssign = at;
        const s = cluster.submittedAt.get(assignment.name);
        if (s !== undefined) cluster.latencies.push(at - s);
      },
      onComplete: () => void cluster.completed++,
    })),
  );
  // Warm the scheduler's code paths (JIT) with a few hundred jobs end to end.
  await enqueueAll(
    env.client,
    Array.from({ length: 500 }, (_, i) => submission(`warm-${i}`)),
    50,
  );
  await until(() => cluster.completed >= 500, 60_000, 'warm-up jobs');
  return cluster;
}

function cpuOf(env: Env) {
  return {
    scheduler: cpuSeconds(env.scheduler.pid),
    nats: cpuSeconds(env.natsPid),
    bench: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    writes: writeCalls(env.scheduler.pid),
  };
}
type Cpu = ReturnType<typeof cpuOf>;
const cpuShare = (a: Cpu, b: Cpu, seconds: number) =>
  `scheduler ${(((b.scheduler - a.scheduler) / seconds) * 100).toFixed(0)}%, nats-server ${(((b.nats - a.nats) / seconds) * 100).toFixed(0)}%, generator+workers ${(((b.bench - a.bench) / seconds) * 100).toFixed(0)}%`;

interface MaxRate {
  enqueueMs: number;
  enqueueCpu: string;
  assignMs: number;
  doneMs: number;
  doneCpu: string;
  /** Scheduler CPU ms per job, submit excluded. */
  cpuMsPerJob: number;
  /** Scheduler write system calls per job, submit excluded. */
  writeCallsPerJob: number;
  /** Assignments per assignment message the workers received. */
  perMessage: number;
  kvWritesPerJob: number;
}

/** (a) max assignments/s: `JOBS` queued jobs in a paused pool, released at once. */
async function maxAssignRate(env: Env, cluster: Cluster): Promise<MaxRate> {
  await admin(env.client, 'pool-pause', { pool: POOL });
  const writes0 = await jobWrites(env.client);
  const prefix = `a${Math.random().toString(36).slice(2, 6)}`;
  const preload = Array.from({ length: JOBS }, (_, i) => submission(`${prefix}-${i}`, { client: clients[i % clients.length]! }));
  const e0 = cpuOf(env);
  const enqueueMs = await enqueueAll(env.client, preload, 200);
  const e1 = cpuOf(env);
  cluster.assigned = 0;
  cluster.completed = 0;
  const messages = () => cluster.workers.reduce((n, w) => n + w.messages, 0);
  const m0 = messages();
  const a0 = cpuOf(env);
  const t0 = performance.now();
  await admin(env.client, 'pool-unpause', { pool: POOL });
  await until(() => cluster.assigned >= JOBS, 180_000, `${JOBS} assignments (got ${cluster.assigned})`);
  const assignMs = cluster.lastAssign - t0;
  await until(() => cluster.completed >= JOBS, 180_000, `${JOBS} completions`);
  const doneMs = performance.now() - t0;
  const a1 = cpuOf(env);
  await sleep(1500); // let write-behind settle (resultPublished etc.)
  const kvWritesPerJob = ((await jobWrites(env.client)) - writes0) / JOBS;
  return {
    enqueueMs,
    enqueueCpu: cpuShare(e0, e1, enqueueMs / 1000),
    assignMs,
    doneMs,
    doneCpu: cpuShare(a0, a1, doneMs / 1000),
    cpuMsPerJob: ((a1.scheduler - a0.scheduler) / JOBS) * 1000,
    writeCallsPerJob: (a1.writes - a0.writes) / JOBS,
    perMessage: JOBS / (messages() - m0),
    kvWritesPerJob,
  };
}

interface Steady {
  rate: number;
  offered: number;
  rejected: number;
  lat: ReturnType<typeof summary>;
  reply: ReturnType<typeof summary>;
  cpu: string;
}

/** (b) submit-to-assignment latency at `rate` jobs/s offered for `SECONDS`. */
async function steadyLatency(env: Env, cluster: Cluster, rate: number): Promise<Steady> {
  cluster.submittedAt.clear();
  cluster.latencies.length = 0;
  const replyLatencies: number[] = [];
  const pending: Promise<void>[] = [];
  const prefix = `b${rate}${Math.random().toString(36).slice(2, 6)}`;
  let sent = 0;
  let rejected = 0;
  const c0 = cpuOf(env);
  const tb = performance.now();
  while (performance.now() - tb < SECONDS * 1000) {
    const due = Math.floor(((performance.now() - tb) / 1000) * rate);
    while (sent < due) {
      const name = `${prefix}-${sent++}`;
      const s = performance.now();
      cluster.submittedAt.set(name, s);
      pending.push(
        enqueue(env.client, submission(name, { client: clients[sent % clients.length]! })).then(
          () => void replyLatencies.push(performance.now() - s),
          () => void rejected++,
        ),
      );
    }
    await sleep(1);
  }
  const offeredSeconds = (performance.now() - tb) / 1000;
  const c1 = cpuOf(env);
  await Promise.all(pending);
  await until(() => cluster.latencies.length >= sent - rejected, 120_000, 'assignments of the steady-rate jobs');
  await until(() => cluster.completed >= cluster.assigned, 120_000, 'completions of the steady-rate jobs');
  // Drop the first second (the generator and the scheduler settling at the new rate).
  return {
    rate,
    offered: sent / offeredSeconds,
    rejected,
    lat: summary(cluster.latencies.slice(rate)),
    reply: summary(replyLatencies),
    cpu: cpuShare(c0, c1, offeredSeconds),
  };
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
if (!values['no-build']) buildScheduler();

if (values.baseline !== undefined) await compare(values.baseline, Number(values.rounds));
else await measureOne();

/** This tree's scheduler against `rev`'s, `rounds` times each, alternating. */
async function compare(rev: string, rounds: number): Promise<void> {
  const variants = [
    { name: `baseline ${rev}`, main: baselineScheduler(rev) },
    values.candidate === undefined ? { name: 'this tree', main: undefined } : { name: values.candidate, main: baselineScheduler(values.candidate) },
  ];
  console.log(
    `${command}\n${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}; ${WORKERS} simulated workers x capacity ${CAPACITY}; load average at start ${load()}\n`,
  );
  const rows: { variant: string; round: number; max: MaxRate; steady: Steady; load: string }[] = [];
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? variants : [...variants].reverse();
    for (const v of order) {
      const env = await startEnv(v.main ? { schedulerMain: v.main } : {});
      try {
        const cluster = await startCluster(env);
        const max = await maxAssignRate(env, cluster);
        const steady = await steadyLatency(env, cluster, TARGET_RATE);
        for (const w of cluster.workers) w.stop();
        rows.push({ variant: v.name, round, max, steady, load: load() });
        console.log(
          `round ${round}, ${v.name}: ${fmtRate(JOBS / (max.assignMs / 1000))}, ${max.cpuMsPerJob.toFixed(3)} ms CPU/job, ${max.writeCallsPerJob.toFixed(2)} write calls/job, ${max.perMessage.toFixed(2)} assignments/message, p99 at ${TARGET_RATE}/s ${fmtMs(steady.lat.p99)} (load ${load()})`,
        );
      } finally {
        await env.cleanup();
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  console.log(
    `\n## Scheduler: ${variants[1]!.name} against ${rev}, ${rounds} rounds each, alternating (${WORKERS} simulated workers x ${CAPACITY}, ${JOBS} queued jobs)\n`,
  );
  table(
    [
      'round',
      'scheduler',
      'assignments/s',
      'scheduler CPU per job',
      'write calls per job',
      'assignments per message',
      'KV writes per job',
      `p50 / p99 at ${TARGET_RATE}/s`,
      'load average (1, 5, 15 min) after',
    ],
    rows.map((r) => [
      String(r.round),
      r.variant,
      fmtRate(JOBS / (r.max.assignMs / 1000)),
      `${r.max.cpuMsPerJob.toFixed(3)} ms`,
      r.max.writeCallsPerJob.toFixed(2),
      r.max.perMessage.toFixed(2),
      r.max.kvWritesPerJob.toFixed(2),
      `${fmtMs(r.steady.lat.p50)} / ${fmtMs(r.steady.lat.p99)}`,
      r.load,
    ]),
  );
  console.log('');
  const of = (name: string) => rows.filter((r) => r.variant === name);
  const medians = variants.map((v) => {
    const rs = of(v.name);
    return {
      name: v.name,
      rate: median(rs.map((r) => JOBS / (r.max.assignMs / 1000))),
      cpu: median(rs.map((r) => r.max.cpuMsPerJob)),
      writes: median(rs.map((r) => r.max.writeCallsPerJob)),
      p50: median(rs.map((r) => r.steady.lat.p50)),
      p99: median(rs.map((r) => r.steady.lat.p99)),
    };
  });
  const [b, n] = medians as [(typeof medians)[0], (typeof medians)[0]];
  table(
    ['median of the rounds', b.name, n.name, 'ratio'],
    [
      ['assignments/s', fmtRate(b.rate), fmtRate(n.rate), `${(n.rate / b.rate).toFixed(2)}x`],
      ['scheduler CPU per job', `${b.cpu.toFixed(3)} ms`, `${n.cpu.toFixed(3)} ms`, `${(n.cpu / b.cpu).toFixed(2)}x`],
      ['scheduler write calls per job', b.writes.toFixed(2), n.writes.toFixed(2), `${(n.writes / b.writes).toFixed(2)}x`],
      [`submit-to-assignment p50 at ${TARGET_RATE}/s`, fmtMs(b.p50), fmtMs(n.p50), `${(n.p50 / b.p50).toFixed(2)}x`],
      [`submit-to-assignment p99 at ${TARGET_RATE}/s`, fmtMs(b.p99), fmtMs(n.p99), `${(n.p99 / b.p99).toFixed(2)}x`],
    ],
  );
}

async function measureOne(): Promise<void> {
  const profDir = values.profile ? await mkdtemp(join(tmpdir(), 'cairn-sched-prof-')) : undefined;
  const env = await startEnv(profDir ? { cpuProf: profDir } : {});
  try {
    console.log(
      `${command}\n${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}; ${WORKERS} simulated workers x capacity ${CAPACITY}; load average at start ${load()}\n`,
    );

    // ---- baseline: the bus alone ----
    const base = await busBaseline(env, { rate: TARGET_RATE, seconds: 2 });

    // ---- the cluster: 200 workers ----
    const cluster = await startCluster(env);
    const max = await maxAssignRate(env, cluster);
    const steadyRuns: Steady[] = [];
    for (const rate of RATES) {
      steadyRuns.push(await steadyLatency(env, cluster, rate));
      await sleep(500);
    }
    for (const w of cluster.workers) w.stop();

    // ---- report ----
    const achieved = JOBS / (max.assignMs / 1000);
    const top = steadyRuns.find((r) => r.rate === TARGET_RATE) ?? steadyRuns[steadyRuns.length - 1]!;
    console.log(`\n## Scheduler throughput and latency (${WORKERS} simulated workers x ${CAPACITY})\n`);
    console.log(
      `Command: \`${command}\`. Processes: nats-server, the scheduler, this load generator with all simulated workers (and, for the baseline only, a trivial responder). Jobs are sent on subjects.enqueue, as the spec-compiler forwards them. Load average at the end: ${load()}.\n`,
    );
    table(
      ['measurement', 'bus baseline', 'scheduler', 'ratio', 'target'],
      [
        [
          'max rate: request/reply round trips vs assignments',
          fmtRate(base.rrRate),
          fmtRate(achieved),
          `${(achieved / base.rrRate).toFixed(2)}`,
          `5,000/s: ${achieved >= 5000 ? 'met' : '**not met**'}`,
        ],
        [
          'max rate: durable-assignment floor (KV put + round trip) vs assignments',
          fmtRate(base.floorRate),
          fmtRate(achieved),
          `${(achieved / base.floorRate).toFixed(2)}`,
          '',
        ],
        [`p50 at ${top.rate}/s: round trip vs submit-to-assignment`, fmtMs(base.rr.p50), fmtMs(top.lat.p50), `${(top.lat.p50 / base.rr.p50).toFixed(1)}`, ''],
        [
          `p99 at ${top.rate}/s: round trip vs submit-to-assignment`,
          fmtMs(base.rr.p99),
          fmtMs(top.lat.p99),
          `${(top.lat.p99 / base.rr.p99).toFixed(1)}`,
          `< 20 ms: ${top.lat.p99 < 20 ? 'met' : '**not met**'}`,
        ],
      ],
    );
    console.log('');
    table(
      ['offered', 'submit-to-assignment p50', 'p99', 'max', 'submit-to-reply p50 / p99', 'CPU while offering'],
      steadyRuns.map((r) => [
        `${r.rate}/s (${r.offered.toFixed(0)}/s${r.rejected ? `, ${r.rejected} rejected` : ''})`,
        fmtMs(r.lat.p50),
        fmtMs(r.lat.p99),
        fmtMs(r.lat.max),
        `${fmtMs(r.reply.p50)} / ${fmtMs(r.reply.p99)}`,
        r.cpu,
      ]),
    );
    console.log('');
    table(
      ['detail', 'value'],
      [
        [
          `enqueue of ${JOBS} jobs (200 in flight, pool paused)`,
          `${(max.enqueueMs / 1000).toFixed(1)} s = ${fmtRate(JOBS / (max.enqueueMs / 1000))}; CPU ${max.enqueueCpu}`,
        ],
        [`${JOBS} queued jobs: unpause to last assignment`, `${(max.assignMs / 1000).toFixed(2)} s = ${fmtRate(achieved)}`],
        ['... to last completion recorded', `${(max.doneMs / 1000).toFixed(2)} s = ${fmtRate(JOBS / (max.doneMs / 1000))}; CPU ${max.doneCpu}`],
        ['scheduler CPU per job (submit excluded)', `${max.cpuMsPerJob.toFixed(2)} ms`],
        ['scheduler write system calls per job (submit excluded)', max.writeCallsPerJob.toFixed(2)],
        ['assignments per assignment message', max.perMessage.toFixed(2)],
        ['job-record KV writes per job (submit to result)', max.kvWritesPerJob.toFixed(2)],
        [`bus baseline at ${TARGET_RATE}/s offered: round trip`, `p50 ${fmtMs(base.rr.p50)}, p99 ${fmtMs(base.rr.p99)}; max ${fmtRate(base.rrRate)}`],
        [`bus baseline at ${TARGET_RATE}/s offered: KV put`, `p50 ${fmtMs(base.kv.p50)}, p99 ${fmtMs(base.kv.p99)}; max ${fmtRate(base.kvRate)}`],
        [
          `bus baseline at ${TARGET_RATE}/s offered: KV put + round trip`,
          `p50 ${fmtMs(base.floor.p50)}, p99 ${fmtMs(base.floor.p99)}; max ${fmtRate(base.floorRate)}`,
        ],
      ],
    );
  } finally {
    const prof = await env.scheduler.stop();
    await env.cleanup();
    if (prof) {
      console.log(`\nScheduler CPU profile: ${prof}\n`);
      table(
        ['package', 'self time'],
        profileByPackage(prof)
          .slice(0, 15)
          .map((r) => [r.pkg, `${r.pct.toFixed(1)}%`]),
      );
      console.log('');
      table(
        ['function', 'self time'],
        profileTop(prof, 30).map((r) => [r.fn, `${r.pct.toFixed(1)}%`]),
      );
    }
  }
}
