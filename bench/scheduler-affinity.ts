/**
 * Cache-affinity hit rate on a realistic hint mix, against placement that ignores hints,
 * on the same job trace (issue 5).
 *
 *   npx tsx bench/scheduler-affinity.ts [--workers 20] [--capacity 2] [--hints 50] [--zipf 1.0]
 *                                       [--jobs 1500] [--rate 60] [--median-ms 300] [--seed 42]
 *
 * The trace (seeded, the same for every run): Poisson arrivals at --rate jobs/s, each
 * job's cache hint drawn from --hints hints with Zipf(--zipf) popularity, and its length
 * from a log-normal (median --median-ms, sigma 0.8, clamped to 20 ms..5 s) — about 70% of
 * the pool's capacity with the defaults. Simulated workers "run" a job by sleeping for
 * its length (a hit does not shorten it, so both runs see the same load).
 *
 * A hit: the job was assigned to a worker that had already completed a job with the same
 * hint (it holds that cache). Three placements of the same trace:
 *   1. the scheduler, shown the real hints (cache affinity);
 *   2. the scheduler, shown a unique hint per job: it cannot know any holder and places
 *      every job on the least loaded free worker (its fallback); hits still counted
 *      against the real hint;
 *   3. random: computed, not run — a discrete-event simulation of the same trace in
 *      which every job goes to a uniformly random worker with a free slot, FIFO.
 * Each run gets a fresh nats-server and scheduler process; jobs go straight to
 * subjects.enqueue as the spec-compiler forwards them.
 */
import { parseArgs } from 'node:util';
import { buildScheduler, enqueue, fmtMs, sleep, startEnv, startWorkers, submission, summary, table, until } from './scheduler-support.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '20' },
    capacity: { type: 'string', default: '2' },
    hints: { type: 'string', default: '50' },
    zipf: { type: 'string', default: '1.0' },
    jobs: { type: 'string', default: '1500' },
    rate: { type: 'string', default: '60' },
    'median-ms': { type: 'string', default: '300' },
    seed: { type: 'string', default: '42' },
    'no-build': { type: 'boolean', default: false },
  },
});
const WORKERS = Number(values.workers);
const CAPACITY = Number(values.capacity);
const HINTS = Number(values.hints);
const ZIPF = Number(values.zipf);
const JOBS = Number(values.jobs);
const RATE = Number(values.rate);
const MEDIAN = Number(values['median-ms']);
const command = `npx tsx bench/scheduler-affinity.ts ${process.argv.slice(2).join(' ')}`.trim();

// ---- the trace ----
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(Number(values.seed));
const weights = Array.from({ length: HINTS }, (_, k) => 1 / (k + 1) ** ZIPF);
const totalWeight = weights.reduce((a, b) => a + b, 0);
const zipfHint = () => {
  let u = rand() * totalWeight;
  for (let k = 0; k < HINTS; k++) if ((u -= weights[k]!) <= 0) return k;
  return HINTS - 1;
};
const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());

interface TraceJob {
  readonly at: number; // ms from the start
  readonly hint: string;
  readonly ms: number;
}
const trace: TraceJob[] = [];
for (let i = 0, t = 0; i < JOBS; i++) {
  t += (-Math.log(1 - rand()) / RATE) * 1000;
  trace.push({ at: t, hint: `hint-${String(zipfHint()).padStart(2, '0')}`, ms: Math.min(5000, Math.max(20, MEDIAN * Math.exp(0.8 * normal()))) });
}
const meanMs = trace.reduce((a, j) => a + j.ms, 0) / JOBS;
const load = (RATE * meanMs) / 1000 / (WORKERS * CAPACITY);

// ---- one run of the trace through the real scheduler ----
interface RunResult {
  hits: number;
  wait: ReturnType<typeof summary>;
  seconds: number;
  metric: Record<string, number>;
}

async function runTrace(uniqueHints: boolean): Promise<RunResult> {
  const env = await startEnv();
  try {
    const index = (name: string) => Number(name.slice(2));
    const submitted = new Map<number, number>();
    const waits: number[] = [];
    let hits = 0;
    let done = 0;
    const workers = await startWorkers(env.workerBus, {
      count: WORKERS,
      capacity: CAPACITY,
      duration: (a) => trace[index(a.name)]!.ms,
      realHint: (a) => trace[index(a.name)]!.hint,
      onAssign: ({ assignment, at, hit }) => {
        if (hit) hits++;
        waits.push(at - submitted.get(index(assignment.name))!);
      },
      onComplete: () => void done++,
    });
    const t0 = performance.now();
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < trace.length; i++) {
      const job = trace[i]!;
      const delay = t0 + job.at - performance.now();
      if (delay > 1) await sleep(delay);
      submitted.set(i, performance.now());
      pending.push(enqueue(env.client, submission(`t-${i}`, { client: `c${i % 5}`, cacheHint: uniqueHints ? `${job.hint}-${i}` : job.hint })));
    }
    await Promise.all(pending);
    await until(() => done >= trace.length, 120_000, 'all jobs of the trace');
    const seconds = (performance.now() - t0) / 1000;
    const metric: Record<string, number> = {};
    for (const m of (await env.scheduler.metrics()).matchAll(/^cairn_scheduler_affinity_total\{result="(\w+)"\} (\d+)/gm)) metric[m[1]!] = Number(m[2]);
    for (const w of workers) w.stop();
    return { hits, wait: summary(waits), seconds, metric };
  } finally {
    await env.cleanup();
  }
}

// ---- random placement, simulated on the same trace ----
function simulateRandom(seed: number): number {
  const r = mulberry32(seed);
  const slots = Array.from({ length: WORKERS }, () => 0); // running jobs per worker
  const built = Array.from({ length: WORKERS }, () => new Set<string>());
  const ends: { t: number; w: number; hint: string }[] = []; // running jobs' completions
  const queue: TraceJob[] = [];
  let hits = 0;
  let next = 0;
  const startJob = (job: TraceJob, t: number) => {
    const free = slots.map((n, w) => (n < CAPACITY ? w : -1)).filter((w) => w >= 0);
    const w = free[Math.floor(r() * free.length)]!;
    if (built[w]!.has(job.hint)) hits++;
    slots[w]!++;
    ends.push({ t: t + job.ms, w, hint: job.hint });
  };
  while (next < trace.length || queue.length > 0 || ends.length > 0) {
    ends.sort((a, b) => a.t - b.t);
    const nextEnd = ends[0]?.t ?? Infinity;
    const nextArrival = trace[next]?.at ?? Infinity;
    let t: number;
    if (nextEnd <= nextArrival) {
      const e = ends.shift()!;
      t = e.t;
      slots[e.w]!--;
      built[e.w]!.add(e.hint);
    } else {
      t = nextArrival;
      queue.push(trace[next++]!);
    }
    while (queue.length > 0 && slots.some((n) => n < CAPACITY)) startJob(queue.shift()!, t);
  }
  return hits;
}

// ---- go ----
if (!values['no-build']) buildScheduler();
console.log(
  `${command}\n${JOBS} jobs at ${RATE}/s, ${HINTS} hints Zipf(${ZIPF}), lengths median ${MEDIAN} ms / mean ${meanMs.toFixed(0)} ms; ${WORKERS} workers x ${CAPACITY}: offered load ${(load * 100).toFixed(0)}% of capacity`,
);
const distinct = new Set(trace.map((j) => j.hint)).size;
const top = [...trace.reduce((m, j) => m.set(j.hint, (m.get(j.hint) ?? 0) + 1), new Map<string, number>()).values()].sort((a, b) => b - a);
console.log(`hints used: ${distinct}; the most popular 5 carry ${((100 * top.slice(0, 5).reduce((a, b) => a + b, 0)) / JOBS).toFixed(0)}% of jobs\n`);

const affinity = await runTrace(false);
const blind = await runTrace(true);
const randomRuns = Array.from({ length: 20 }, (_, i) => simulateRandom(1000 + i));
const randomHits = randomRuns.reduce((a, b) => a + b, 0) / randomRuns.length;
// Upper bound: every job after the first of its hint on some worker could hit, at most
// jobs - distinct hints.
const bound = JOBS - distinct;

const pct = (n: number) => `${((100 * n) / JOBS).toFixed(1)}%`;
console.log(`## Cache-affinity hit rate (${WORKERS} workers x ${CAPACITY}, ${HINTS} hints Zipf(${ZIPF}), ${JOBS} jobs)\n`);
console.log(`Command: \`${command}\`. Processes per run: nats-server, the scheduler, this load generator with the simulated workers.\n`);
table(
  ['placement (same trace)', 'hit rate', 'submit-to-assignment p50 / p99', 'trace took', "scheduler's affinity counter"],
  [
    [
      'scheduler, real hints (cache affinity)',
      pct(affinity.hits),
      `${fmtMs(affinity.wait.p50)} / ${fmtMs(affinity.wait.p99)}`,
      `${affinity.seconds.toFixed(1)} s`,
      Object.entries(affinity.metric)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    ],
    [
      'scheduler, a unique hint per job (least loaded)',
      pct(blind.hits),
      `${fmtMs(blind.wait.p50)} / ${fmtMs(blind.wait.p99)}`,
      `${blind.seconds.toFixed(1)} s`,
      Object.entries(blind.metric)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    ],
    ['random free worker (simulated, mean of 20 seeds)', pct(randomHits), '(not run)', '', ''],
    ['upper bound (every repeat of a hint hits)', pct(bound), '', '', ''],
  ],
);
console.log(
  `\nRatio: affinity / random = ${(affinity.hits / randomHits).toFixed(2)}; affinity / least loaded = ${(affinity.hits / Math.max(1, blind.hits)).toFixed(2)}.`,
);
