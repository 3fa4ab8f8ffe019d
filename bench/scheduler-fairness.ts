/**
 * Fair share under contention (issue 5): clients with different rates, each with a large
 * backlog, few workers. Reports each client's share of the assignments against its share
 * of the rates, and how long a newcomer with a single job waits behind the flood.
 *
 *   npx tsx bench/scheduler-fairness.ts [--rates 1,1,2,4] [--backlog 1000] [--workers 4]
 *                                       [--capacity 1] [--job-ms 20] [--window 1600]
 *
 * The rates are set with `admin client-rate`; the pool is paused while every client
 * queues its backlog on subjects.enqueue (as the spec-compiler forwards jobs), then
 * unpaused. The window is the first --window assignments after that, while every client
 * still has jobs queued (the default backlog outlasts it). Midway through the window a
 * new client (rate 1) submits one job: a fair queue starts it within about one round
 * of the other clients, however long their queues are.
 */
import { parseArgs } from 'node:util';
import { admin, buildScheduler, enqueue, enqueueAll, fmtMs, POOL, startEnv, startWorkers, submission, table, until } from './scheduler-support.js';

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '1,1,2,4' },
    backlog: { type: 'string', default: '1000' },
    workers: { type: 'string', default: '4' },
    capacity: { type: 'string', default: '1' },
    'job-ms': { type: 'string', default: '20' },
    window: { type: 'string', default: '1600' },
    'no-build': { type: 'boolean', default: false },
  },
});
const RATES = values.rates!.split(',').map(Number);
const BACKLOG = Number(values.backlog);
const JOB_MS = Number(values['job-ms']);
const WINDOW = Number(values.window);
const clients = RATES.map((_, i) => `client-${String.fromCharCode(97 + i)}`);
const command = `npx tsx bench/scheduler-fairness.ts ${process.argv.slice(2).join(' ')}`.trim();

if (!values['no-build']) buildScheduler();
const env = await startEnv();
try {
  const order: string[] = []; // client of each assignment, in order
  const newcomer: { submitted: number; position: number; assignedAt?: number; submittedAt: number } = { submitted: -1, position: -1, submittedAt: 0 };
  const workers = await startWorkers(env.workerBus, {
    count: Number(values.workers),
    capacity: Number(values.capacity),
    duration: () => JOB_MS,
    onAssign: ({ assignment, at }) => {
      order.push(assignment.client);
      if (assignment.client === 'newcomer') {
        newcomer.position = order.length - newcomer.submitted - 1;
        newcomer.assignedAt = at;
      }
    },
  });
  for (const [i, client] of clients.entries()) await admin(env.client, 'client-rate', { client, rate: RATES[i]! });
  await admin(env.client, 'pool-pause', { pool: POOL });
  // Interleave nothing: each client queues its whole backlog in turn, the first client first.
  for (const client of clients)
    await enqueueAll(
      env.client,
      Array.from({ length: BACKLOG }, (_, j) => submission(`${client}-${j}`, { client })),
      100,
    );
  const t0 = performance.now();
  await admin(env.client, 'pool-unpause', { pool: POOL });
  await until(() => order.length >= WINDOW / 2, 120_000, 'the first half of the window');
  newcomer.submitted = order.length;
  newcomer.submittedAt = performance.now();
  await enqueue(env.client, submission('newcomer-0', { client: 'newcomer' }));
  await until(() => order.length >= WINDOW, 120_000, 'the window');
  const seconds = (performance.now() - t0) / 1000;
  for (const w of workers) w.stop();

  const window = order.slice(0, WINDOW).filter((c) => c !== 'newcomer');
  const rateSum = RATES.reduce((a, b) => a + b, 0);
  const rows = clients.map((client, i) => {
    const n = window.filter((c) => c === client).length;
    const share = n / window.length;
    const want = RATES[i]! / rateSum;
    return { client, rate: RATES[i]!, n, share, want, dev: share - want };
  });
  // The same, over every run of 10 * (sum of rates) consecutive assignments: how uneven it gets over short stretches.
  const span = Math.round(10 * rateSum);
  let worstSpan = 0;
  for (let s = 0; s + span <= window.length; s += span) {
    const part = window.slice(s, s + span);
    for (const [i, client] of clients.entries())
      worstSpan = Math.max(worstSpan, Math.abs(part.filter((c) => c === client).length / span - RATES[i]! / rateSum));
  }
  const maxDev = Math.max(...rows.map((r) => Math.abs(r.dev)));
  const pp = (x: number) => `${(x * 100).toFixed(1)}%`;

  console.log(`${command}\n`);
  console.log(
    `## Fair share under contention (${clients.length} clients, rates ${RATES.join(':')}, ${BACKLOG} queued each, ${values.workers} workers x ${values.capacity}, ${JOB_MS} ms jobs)\n`,
  );
  console.log(`Command: \`${command}\`. Processes: nats-server, the scheduler, this load generator with the simulated workers.\n`);
  table(
    ['client', 'rate', `assignments (first ${window.length})`, 'share', 'rate share', 'deviation'],
    rows.map((r) => [r.client, String(r.rate), String(r.n), pp(r.share), pp(r.want), `${r.dev >= 0 ? '+' : ''}${(r.dev * 100).toFixed(1)} pts`]),
  );
  console.log('');
  table(
    ['measurement', 'value'],
    [
      ['max deviation from the rate share, whole window', `${(maxDev * 100).toFixed(2)} pts`],
      [`max deviation in any block of ${span} consecutive assignments`, `${(worstSpan * 100).toFixed(1)} pts`],
      ['assignments in the window', `${window.length} in ${seconds.toFixed(1)} s`],
      [
        'newcomer (rate 1, one job) submitted into the flood',
        newcomer.assignedAt === undefined
          ? 'not assigned within the window'
          : `assigned after ${newcomer.position} other assignments, ${fmtMs(newcomer.assignedAt - newcomer.submittedAt)} after submit (${BACKLOG * clients.length - newcomer.submitted} jobs were queued ahead of it)`,
      ],
    ],
  );
} finally {
  await env.cleanup();
}
