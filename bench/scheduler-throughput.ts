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
 */
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  admin,
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
  },
});
const WORKERS = Number(values.workers);
const CAPACITY = Number(values.capacity);
const JOBS = Number(values.jobs);
const RATES = values.rates!.split(',').map(Number);
const TARGET_RATE = 1000;
const SECONDS = Number(values.seconds);
const command = `npx tsx bench/scheduler-throughput.ts ${process.argv.slice(2).join(' ')}`.trim();

if (!values['no-build']) buildScheduler();
const profDir = values.profile ? await mkdtemp(join(tmpdir(), 'cairn-sched-prof-')) : undefined;
const env = await startEnv(profDir ? { cpuProf: profDir } : {});
const cpu = () => ({ scheduler: cpuSeconds(env.scheduler.pid), nats: cpuSeconds(env.natsPid), bench: (process.cpuUsage().user + process.cpuUsage().system) / 1e6 });
const cpuShare = (a: ReturnType<typeof cpu>, b: ReturnType<typeof cpu>, seconds: number) =>
  `scheduler ${(((b.scheduler - a.scheduler) / seconds) * 100).toFixed(0)}%, nats-server ${(((b.nats - a.nats) / seconds) * 100).toFixed(0)}%, generator+workers ${(((b.bench - a.bench) / seconds) * 100).toFixed(0)}%`;

try {
  console.log(`${command}\n${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}; ${WORKERS} simulated workers x capacity ${CAPACITY}\n`);

  // ---- baseline: the bus alone ----
  const base = await busBaseline(env, { rate: TARGET_RATE, seconds: 2 });

  // ---- the cluster: 200 workers ----
  const submittedAt = new Map<string, number>();
  const latencies: number[] = [];
  let assigned = 0;
  let completed = 0;
  let firstAssign = 0;
  let lastAssign = 0;
  const workers = await startWorkers(env.workerBus, {
    count: WORKERS,
    capacity: CAPACITY,
    onAssign: ({ assignment, at }) => {
      assigned++;
      firstAssign ||= at;
      lastAssign = at;
      const s = submittedAt.get(assignment.name);
      if (s !== undefined) latencies.push(at - s);
    },
    onComplete: () => void completed++,
  });
  // Warm the scheduler's code paths (JIT) with a few hundred jobs end to end.
  await enqueueAll(env.client, Array.from({ length: 500 }, (_, i) => submission(`warm-${i}`)), 50);
  await until(() => completed >= 500, 60_000, 'warm-up jobs');

  // ---- (a) max assignments/s: a pre-loaded queue, released at once ----
  await admin(env.client, 'pool-pause', { pool: POOL });
  const writes0 = await jobWrites(env.client);
  const clients = ['alice', 'bob', 'carol', 'dave'];
  const preload = Array.from({ length: JOBS }, (_, i) => submission(`a-${i}`, { client: clients[i % clients.length]! }));
  const cpuE0 = cpu();
  const enqueueMs = await enqueueAll(env.client, preload, 200);
  const cpuE1 = cpu();
  assigned = 0;
  completed = 0;
  firstAssign = 0;
  const cpuA0 = cpu();
  const t0 = performance.now();
  await admin(env.client, 'pool-unpause', { pool: POOL });
  await until(() => assigned >= JOBS, 180_000, `${JOBS} assignments (got ${assigned})`);
  const assignMs = lastAssign - t0;
  await until(() => completed >= JOBS, 180_000, `${JOBS} completions`);
  const doneMs = performance.now() - t0;
  const cpuA1 = cpu();
  await sleep(1500); // let write-behind settle (resultPublished etc.)
  const writesPerJob = ((await jobWrites(env.client)) - writes0) / JOBS;

  // ---- (b) latency at steady offered rates ----
  const steadyRuns: { rate: number; offered: number; rejected: number; lat: ReturnType<typeof summary>; reply: ReturnType<typeof summary>; cpu: string }[] = [];
  for (const rate of RATES) {
    submittedAt.clear();
    latencies.length = 0;
    const replyLatencies: number[] = [];
    const pending: Promise<void>[] = [];
    let sent = 0;
    let rejected = 0;
    const c0 = cpu();
    const tb = performance.now();
    while (performance.now() - tb < SECONDS * 1000) {
      const due = Math.floor(((performance.now() - tb) / 1000) * rate);
      while (sent < due) {
        const name = `b${rate}-${sent++}`;
        const s = performance.now();
        submittedAt.set(name, s);
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
    const c1 = cpu();
    await Promise.all(pending);
    await until(() => latencies.length >= sent - rejected, 120_000, 'assignments of the steady-rate jobs');
    await until(() => completed >= assigned, 120_000, 'completions of the steady-rate jobs');
    // Drop the first second (the generator and the scheduler settling at the new rate).
    steadyRuns.push({ rate, offered: sent / offeredSeconds, rejected, lat: summary(latencies.slice(rate)), reply: summary(replyLatencies), cpu: cpuShare(c0, c1, offeredSeconds) });
    await sleep(500);
  }

  for (const w of workers) w.stop();

  // ---- report ----
  const achieved = JOBS / (assignMs / 1000);
  const top = steadyRuns.find((r) => r.rate === TARGET_RATE) ?? steadyRuns[steadyRuns.length - 1]!;
  console.log(`\n## Scheduler throughput and latency (${WORKERS} simulated workers x ${CAPACITY})\n`);
  console.log(`Command: \`${command}\`. Processes: nats-server, the scheduler, this load generator with all simulated workers (and, for the baseline only, a trivial responder). Jobs are sent on subjects.enqueue, as the spec-compiler forwards them.\n`);
  table(
    ['measurement', 'bus baseline', 'scheduler', 'ratio', 'target'],
    [
      ['max rate: request/reply round trips vs assignments', fmtRate(base.rrRate), fmtRate(achieved), `${(achieved / base.rrRate).toFixed(2)}`, `5,000/s: ${achieved >= 5000 ? 'met' : '**not met**'}`],
      ['max rate: durable-assignment floor (KV put + round trip) vs assignments', fmtRate(base.floorRate), fmtRate(achieved), `${(achieved / base.floorRate).toFixed(2)}`, ''],
      [`p50 at ${top.rate}/s: round trip vs submit-to-assignment`, fmtMs(base.rr.p50), fmtMs(top.lat.p50), `${(top.lat.p50 / base.rr.p50).toFixed(1)}`, ''],
      [`p99 at ${top.rate}/s: round trip vs submit-to-assignment`, fmtMs(base.rr.p99), fmtMs(top.lat.p99), `${(top.lat.p99 / base.rr.p99).toFixed(1)}`, `< 20 ms: ${top.lat.p99 < 20 ? 'met' : '**not met**'}`],
    ],
  );
  console.log('');
  table(
    ['offered', 'submit-to-assignment p50', 'p99', 'max', 'submit-to-reply p50 / p99', 'CPU while offering'],
    steadyRuns.map((r) => [`${r.rate}/s (${r.offered.toFixed(0)}/s${r.rejected ? `, ${r.rejected} rejected` : ''})`, fmtMs(r.lat.p50), fmtMs(r.lat.p99), fmtMs(r.lat.max), `${fmtMs(r.reply.p50)} / ${fmtMs(r.reply.p99)}`, r.cpu]),
  );
  console.log('');
  table(
    ['detail', 'value'],
    [
      [`enqueue of ${JOBS} jobs (200 in flight, pool paused)`, `${(enqueueMs / 1000).toFixed(1)} s = ${fmtRate(JOBS / (enqueueMs / 1000))}; CPU ${cpuShare(cpuE0, cpuE1, enqueueMs / 1000)}`],
      [`${JOBS} queued jobs: unpause to last assignment`, `${(assignMs / 1000).toFixed(2)} s = ${fmtRate(achieved)}`],
      ['... to last completion recorded', `${(doneMs / 1000).toFixed(2)} s = ${fmtRate(JOBS / (doneMs / 1000))}; CPU ${cpuShare(cpuA0, cpuA1, doneMs / 1000)}`],
      ['scheduler CPU per job (submit excluded)', `${(((cpuA1.scheduler - cpuA0.scheduler) / JOBS) * 1000).toFixed(2)} ms`],
      ['job-record KV writes per job (submit to result)', writesPerJob.toFixed(2)],
      [`bus baseline at ${TARGET_RATE}/s offered: round trip`, `p50 ${fmtMs(base.rr.p50)}, p99 ${fmtMs(base.rr.p99)}; max ${fmtRate(base.rrRate)}`],
      [`bus baseline at ${TARGET_RATE}/s offered: KV put`, `p50 ${fmtMs(base.kv.p50)}, p99 ${fmtMs(base.kv.p99)}; max ${fmtRate(base.kvRate)}`],
      [`bus baseline at ${TARGET_RATE}/s offered: KV put + round trip`, `p50 ${fmtMs(base.floor.p50)}, p99 ${fmtMs(base.floor.p99)}; max ${fmtRate(base.floorRate)}`],
    ],
  );
} finally {
  const prof = await env.scheduler.stop();
  await env.cleanup();
  if (prof) {
    console.log(`\nScheduler CPU profile: ${prof}\n`);
    table(['package', 'self time'], profileByPackage(prof).slice(0, 15).map((r) => [r.pkg, `${r.pct.toFixed(1)}%`]));
    console.log('');
    table(['function', 'self time'], profileTop(prof, 30).map((r) => [r.fn, `${r.pct.toFixed(1)}%`]));
  }
}
