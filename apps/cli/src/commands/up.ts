import type { Command } from 'commander';
import { EXIT, UsageError, UserError } from '../cli-error.js';
import type { Io } from '../io.js';

interface UpOpts {
  nats?: string;
  data: string;
  workers: string;
  capacity: string;
  pool: string;
  resultsPort: string;
  drainTimeout: string;
  readyTimeout: string;
  quiet?: boolean;
  client?: string[];
  cacheDomain?: string[];
  registry: boolean;
}

export function registerUp(program: Command, io: Io, setExit: (code: number) => void): void {
  program
    .command('up')
    .summary('run the whole cluster on this machine (NATS, scheduler, compiler, workers, results, registry)')
    .description(
      `Starts a nats-server with JetStream of its own on a free port (or uses the server --nats
names), the scheduler, the spec-compiler, worker-agents building on this machine's default
store (tools/setup.sh makes it), the results-store with its dashboard, and a docker-registry
on a free 127.0.0.1 port (storage in <data>/registry) with the base-image-builder publishing
the base images to it (CAIRN_REGISTRY=http://host:port names another registry instead, and
none is started; --no-registry starts neither). The base-image-builder builds, as cluster
jobs on this machine's workers, every image of its matrix that was never published
(debootstrap and apt need the network), then each on its schedule; prints "cluster
ready" once every one of them reports ready, and keeps them running: a process that exits
is started again (after 1 s, doubling while it keeps failing at once; after 5 quick
failures in a row cairn up gives up and stops). \`cairn admin services\` lists them.
The other commands find this cluster through $CAIRN_HOME/cluster.json (~/.cairn).
The NATS server it starts lets in only its own services and workers, the admin user and
the clients it was started for (you, and each --client), each with a password kept in
<data>/nats-passwords (readable by you alone); the other commands find theirs there.
Ctrl-C stops in order: the workers finish their builds (up to --drain-timeout, then the
builds go back to the queue), then the services, NATS and the registry last, within 30 s. A second Ctrl-C
cancels the running builds and stops at once.`,
    )
    .option(
      '--nats <url>',
      'use this NATS server (it must have JetStream; started here if nothing answers and it is on this machine); default: CAIRN_NATS, else a private one on a free port',
      process.env.CAIRN_NATS,
    )
    .option('--data <dir>', 'JetStream store, NATS passwords, scheduler key and results database', '/var/lib/cairn/cluster')
    .option('--workers <n>', 'worker-agents to run', '1')
    .option('--capacity <n>', 'builds each worker runs at once', '2')
    .option('--pool <pool>', 'the pool the workers serve', 'linux-x86_64')
    .option('--results-port <port>', 'dashboard and JSON API port (0: a free one)', '8080')
    .option('--drain-timeout <seconds>', 'how long running builds may take to finish when stopping, before they go back to the queue', '15')
    .option('--ready-timeout <seconds>', 'how long the services may take to report ready', '120')
    .option(
      '--client <id>',
      'another client ID that may submit to the NATS server cairn up starts (repeatable; yours, CAIRN_CLIENT or your user name, always may): its password goes to <data>/nats-passwords/<id>.password',
      (id: string, all: string[] = []) => [...all, id],
    )
    .option(
      '--cache-domain <domain=clients>',
      "let these clients share named caches (and the steps that mount them): DOMAIN=CLIENT,CLIENT... (repeatable; * for every client named in no other domain); by default each client's caches are its own (CAIRN_CACHE_DOMAINS)",
      (spec: string, all: string[] = []) => [...all, spec],
    )
    .option('--no-registry', 'start no registry and no base-image-builder (unless CAIRN_REGISTRY names a registry)')
    .option('--quiet', "don't print the services' logs")
    .addHelpText(
      'after',
      `
Exit status: 0 stopped by Ctrl-C or SIGTERM; 1 a service kept failing; 3 NATS could not be
used (the --nats server has no JetStream, or nothing answers there).

Examples:
  cairn up                                   everything on this machine, dashboard on :8080
  cairn up --workers 2 --capacity 4
  cairn up --client ci --client bob          CAIRN_CLIENT=ci may submit too (with read access to its password file)
  cairn up --client ci --cache-domain me=$USER,ci   ci and you share caches, as one trust domain
  cairn up --nats nats://10.0.0.5:4222       use an existing NATS server (with JetStream)`,
    )
    .action(async (opts: UpOpts) => {
      const count = (flag: string, text: string, min: number) => {
        const n = Number(text);
        if (!Number.isInteger(n) || n < min) throw new UserError(`${flag} takes a whole number of at least ${min}, not "${text}"`);
        return n;
      };
      const workers = count('--workers', opts.workers, 1);
      const capacity = count('--capacity', opts.capacity, 1);
      const resultsPort = count('--results-port', opts.resultsPort, 0);
      const drainMs = count('--drain-timeout', opts.drainTimeout, 0) * 1000;
      const readyMs = count('--ready-timeout', opts.readyTimeout, 1) * 1000;
      const { LocalCluster } = await import('../cluster/local-cluster.js');
      const { writeClusterFile, removeClusterFile } = await import('../cluster/cluster-file.js');
      const { clientId } = await import('../cluster/connection.js');
      const clients = [clientId({}), ...(opts.client ?? []).map((id) => clientId({ client: id }))];
      const cacheDomains = opts.cacheDomain?.join(';');
      if (cacheDomains !== undefined) {
        const { CacheDomains } = await import('@cairn/contracts');
        try {
          CacheDomains.parse(cacheDomains);
        } catch (e) {
          throw new UsageError(`--cache-domain: ${(e as Error).message}`);
        }
      }
      const stamp = () => new Date().toISOString().slice(11, 19);
      const note = (line: string) => io.err(`cairn up ${stamp()}: ${line}\n`);

      // Signals from the start: a Ctrl-C while the services come up stops them in order too.
      let interrupted: ((why: string) => void) | undefined;
      const stopAsked = new Promise<string>((resolve) => (interrupted = resolve));
      let signals = 0;
      let cluster: import('../cluster/local-cluster.js').LocalCluster | undefined;
      const onSignal = (signal: NodeJS.Signals) => {
        signals++;
        if (signals === 1) {
          interrupted?.(signal === 'SIGINT' ? 'interrupted' : 'terminated');
          return;
        }
        note(`${signal} again: cancelling the running builds and stopping now`);
        cluster?.cancelNow();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        let why: string;
        const starting = LocalCluster.start({
          ...(opts.nats === undefined ? {} : { nats: opts.nats }),
          dataDir: opts.data,
          workers,
          clients,
          ...(cacheDomains === undefined ? {} : { cacheDomains }),
          capacity,
          pool: opts.pool,
          resultsPort,
          drainMs,
          registry: opts.registry,
          log: (line) => {
            if (!opts.quiet) io.err(`${line}\n`);
          },
          note,
        });
        cluster = await starting;
        await writeClusterFile({
          natsUrl: cluster.natsUrl,
          pid: process.pid,
          dataDir: opts.data,
          pool: opts.pool,
          startedAt: Date.now(),
          ...(cluster.dashboardUrl ? { dashboard: cluster.dashboardUrl } : {}),
          ...(cluster.registryUrl ? { registry: cluster.registryUrl } : {}),
          ...(cluster.natsAuth ? { natsPasswords: cluster.natsAuth.passwordsDir, natsAdmin: cluster.natsAuth.admin } : {}),
        });
        const ready = cluster.ready(readyMs).then(
          () => undefined,
          (e: unknown) => (e instanceof Error ? e.message : String(e)),
        );
        const first = await Promise.race([
          ready.then((problem) => ({ problem })),
          stopAsked.then((w) => ({ stop: w })),
          cluster.supervisor.failed.then((w) => ({ failed: w })),
        ]);
        if ('problem' in first && first.problem === undefined) {
          io.out(
            `cluster ready: NATS ${cluster.natsUrl}, pool ${opts.pool}, ${workers} worker(s)${cluster.dashboardUrl ? `, dashboard ${cluster.dashboardUrl}` : ''}${cluster.registryUrl ? `, registry ${cluster.registryUrl}` : ''} (Ctrl-C to stop)\n`,
          );
          why = await Promise.race([stopAsked, cluster.supervisor.failed.then((w) => `gave up: ${w}`)]);
        } else if ('problem' in first) {
          why = `gave up: ${first.problem}`;
        } else if ('failed' in first) {
          why = `gave up: ${first.failed}`;
        } else {
          why = first.stop;
        }
        note(`${why}; stopping: workers finish their builds (up to ${drainMs / 1000} s), then the services, NATS and the registry last`);
        const started = Date.now();
        await cluster.stop();
        note(`stopped in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        if (why.startsWith('gave up')) setExit(EXIT.failed);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await removeClusterFile(opts.data).catch(() => undefined);
      }
    });
}
