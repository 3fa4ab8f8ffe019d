import type { Command } from 'commander';
import type { ServiceStatus } from '@cairn/contracts';
import type { ClusterFlags } from '../cluster/connection.js';
import { clusterOptions, withCluster } from '../cluster/with-cluster.js';
import type { Io } from '../io.js';

type Row = Record<string, unknown>;

/** `cairn admin ...`: what the operator sees and changes in the scheduler. */
export function registerAdmin(program: Command, io: Io): void {
  const admin = program
    .command('admin')
    .summary('pools, workers, queues and clients of the scheduler; the services of cairn up')
    .description(
      `Operator commands (the admin NATS role). Listing commands print a table, or JSON with
--json; changes print what was done.`,
    )
    .addHelpText(
      'after',
      `
Examples:
  cairn admin pools                       queued and running jobs and workers per pool
  cairn admin services                    what cairn up runs, restarts and why
  cairn admin workers --json              every worker with its load, hints and state
  cairn admin worker drain w1             w1 finishes its jobs and takes no new ones
  cairn admin pool pause linux-x86_64     stop assigning in that pool (jobs stay queued)
  cairn admin client-rate ci-nightly 0.2  that client gets a fifth of a default share`,
    );

  const ask = async (opts: ClusterFlags & { json?: boolean }, verb: string, data: unknown, render: (value: unknown) => string) =>
    withCluster(
      opts,
      async (nc) => {
        const { request } = await import('../cluster/connection.js');
        const { subjects } = await import('@cairn/contracts');
        const value = await request<unknown>(nc, subjects.admin(verb as Parameters<typeof subjects.admin>[0]), data);
        io.out(opts.json ? `${JSON.stringify(value)}\n` : render(value));
      },
      'admin',
    );

  const listing = (name: string, summary: string, columns: string[]) =>
    clusterOptions(admin.command(name).summary(summary).option('--json', 'print JSON')).action((opts: ClusterFlags & { json?: boolean }) =>
      ask(opts, name, {}, (rows) => table(rows as Row[], columns)),
    );
  listing('pools', 'pools with queued and running jobs and connected workers', ['pool', 'paused', 'queued', 'running', 'workers']);
  listing('workers', 'workers with their load, state and cache hints', [
    'worker',
    'pool',
    'platform',
    'capacity',
    'running',
    'connected',
    'paused',
    'draining',
    'refusing',
    'hints',
    'freeBytes',
  ]);
  listing('queues', 'queued jobs per pool and client', ['pool', 'client', 'urgent', 'normal']);
  listing('clients', 'clients with their rate and jobs', ['client', 'rate', 'queued', 'running', 'finished']);

  clusterOptions(admin.command('services').summary('the processes cairn up supervises: state, restarts, last event').option('--json', 'print JSON')).action(
    (opts: ClusterFlags & { json?: boolean }) =>
      withCluster(
        opts,
        async (nc) => {
          const { buckets, openBucket, ServiceStatus: schema } = await import('@cairn/contracts');
          const kv = await openBucket(nc, buckets.services);
          const rows: ServiceStatus[] = [];
          for await (const key of await kv.keys()) {
            const entry = await kv.get(key);
            const parsed = entry && entry.length > 0 ? schema.safeParse(entry.json()) : undefined;
            if (parsed?.success) rows.push(parsed.data);
          }
          rows.sort((a, b) => order(a.name) - order(b.name) || a.name.localeCompare(b.name, 'en', { numeric: true }));
          if (opts.json) {
            io.out(`${JSON.stringify(rows)}\n`);
            return;
          }
          if (rows.length === 0) {
            io.out('(none: no cairn up has run on this NATS server)\n');
            return;
          }
          const ago = (at: number) => `${Math.max(0, Math.round((Date.now() - at) / 1000))} s ago`;
          io.out(
            table(
              rows.map((r) => ({ ...r, lastEvent: r.events.length ? `${r.events.at(-1)!.message} (${ago(r.events.at(-1)!.at)})` : '' })),
              ['name', 'state', 'pid', 'restarts', 'lastExit', 'lastEvent'],
            ),
          );
        },
        'admin',
      ),
  );
  const worker = admin.command('worker').summary('pause, unpause, drain or forget a worker');
  for (const [verb, what] of [
    ['pause', 'no new jobs; running ones go on'],
    ['unpause', 'take jobs again (also ends a drain)'],
    ['drain', 'finish running jobs, take no new ones'],
    ['forget', 'drop the worker; its running jobs go back to the queue'],
  ] as const) {
    clusterOptions(worker.command(verb).summary(what).argument('<worker>', 'worker ID').option('--json', 'print JSON')).action(
      (id: string, opts: ClusterFlags & { json?: boolean }) => ask(opts, `worker-${verb}`, { worker: id }, () => `worker ${id}: ${verb} done\n`),
    );
  }
  const pool = admin.command('pool').summary('pause or unpause a pool');
  for (const verb of ['pause', 'unpause'] as const) {
    clusterOptions(pool.command(verb).summary(`${verb} assigning jobs in a pool`).argument('<pool>', 'pool name').option('--json', 'print JSON')).action(
      (name: string, opts: ClusterFlags & { json?: boolean }) => ask(opts, `pool-${verb}`, { pool: name }, () => `pool ${name}: ${verb}d\n`),
    );
  }
  clusterOptions(
    admin
      .command('client-rate')
      .summary("set a client's share (default 1): a client with rate 2 gets twice the jobs of one with 1 under contention")
      .argument('<client>', 'client ID')
      .argument('<rate>', 'a positive number')
      .option('--json', 'print JSON'),
  ).action((client: string, rate: string, opts: ClusterFlags & { json?: boolean }) =>
    ask(opts, 'client-rate', { client, rate: Number(rate) }, () => `client ${client}: rate ${rate}\n`),
  );
}

/** Services in the order they start: NATS, the services, the workers. */
function order(name: string): number {
  return ['nats', 'scheduler', 'spec-compiler', 'results-store'].indexOf(name) >>> 0;
}

function table(rows: Row[], columns: string[]): string {
  if (rows.length === 0) return '(none)\n';
  const cell = (v: unknown) => (Array.isArray(v) ? String(v.length) : String(v ?? ''));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return `${[line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n')}\n`;
}
