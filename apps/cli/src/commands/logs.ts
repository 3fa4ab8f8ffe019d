import type { Command } from 'commander';
import { EXIT_OF_JOB } from '../cli-error.js';
import type { ClusterFlags } from '../cluster/connection.js';
import { printLog } from '../cluster/print-log.js';
import { clusterOptions, withCluster } from '../cluster/with-cluster.js';
import type { Io } from '../io.js';

export function registerLogs(program: Command, io: Io, setExit: (code: number) => void): void {
  clusterOptions(
    program
      .command('logs')
      .summary("print a job's log (from the start, also for a late --follow)")
      .argument('<job>', 'the job ID that submit printed')
      .option('--follow', 'keep printing until the job ends; exit with its result'),
  )
    .addHelpText(
      'after',
      `
Exit status with --follow: 0 succeeded, 1 failed, 130 cancelled or Ctrl-C (which stops
following, not the job); 3 cluster unreachable.

Example:
  cairn logs j-m1abc2def3 --follow`,
    )
    .action(async (job: string, opts: ClusterFlags & { follow?: boolean }) => {
      await withCluster(opts, async (nc, client) => {
        const end = await printLog(io, nc, client, job, { follow: opts.follow ?? false, toStderr: false });
        if (opts.follow && end) setExit(EXIT_OF_JOB[end]);
      });
    });
}
