import type { Command } from 'commander';
import type { Io } from '../io.js';

interface UpOpts {
  nats: string;
  data: string;
  workers: string;
  capacity: string;
  pool: string;
  resultsPort: string;
  quiet?: boolean;
}

export function registerUp(program: Command, io: Io, setExit: (code: number) => void): void {
  program
    .command('up')
    .summary('run the whole cluster on this machine (NATS, scheduler, compiler, workers, results)')
    .description(`Starts a nats-server with JetStream (unless one already answers at --nats), the
scheduler, the spec-compiler, worker-agents building on this machine's default store
(tools/setup.sh makes it) and the results-store with its dashboard, and keeps them
running until interrupted. Then, from another terminal: cairn submit --pool POOL ...
Stopping (Ctrl-C) lets the workers finish their running builds first.`)
    .option('--nats <url>', 'where NATS listens (started here when nothing answers)', process.env.CAIRN_NATS ?? 'nats://127.0.0.1:4222')
    .option('--data <dir>', 'JetStream store, scheduler key and results database', '/var/lib/cairn/cluster')
    .option('--workers <n>', 'worker-agents to run', '1')
    .option('--capacity <n>', 'builds each worker runs at once', '2')
    .option('--pool <pool>', 'the pool the workers serve', 'linux-x86_64')
    .option('--results-port <port>', 'dashboard and JSON API port', '8080')
    .option('--quiet', "don't print the services' logs")
    .addHelpText('after', `
Examples:
  cairn up                                   everything on this machine, dashboard on :8080
  cairn up --workers 2 --capacity 4
  CAIRN_NATS=nats://10.0.0.5:4222 cairn up   use an existing NATS server`)
    .action(async (opts: UpOpts) => {
      const { LocalCluster } = await import('../cluster/local-cluster.js');
      const cluster = await LocalCluster.start({
        natsUrl: opts.nats,
        dataDir: opts.data,
        workers: Number(opts.workers),
        capacity: Number(opts.capacity),
        pool: opts.pool,
        resultsPort: Number(opts.resultsPort),
        log: (line) => {
          if (!opts.quiet) io.err(`${line}\n`);
        },
      });
      io.out(`cluster up: NATS ${opts.nats}, pool ${opts.pool}, dashboard http://127.0.0.1:${opts.resultsPort}/ (Ctrl-C to stop)\n`);
      const stop = new Promise<string>((resolve) => {
        process.once('SIGINT', () => resolve('interrupted'));
        process.once('SIGTERM', () => resolve('terminated'));
      });
      const why = await Promise.race([stop, cluster.exited()]);
      io.err(`cairn up: ${why}; stopping (workers finish their builds first)\n`);
      await cluster.stop();
      if (!['interrupted', 'terminated'].includes(why)) setExit(1);
    });
}
