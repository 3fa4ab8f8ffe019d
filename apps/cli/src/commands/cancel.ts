import type { Command } from 'commander';
import type { JobStatus } from '@cairn/contracts';
import type { ClusterFlags } from '../cluster/connection.js';
import { clusterOptions, withCluster } from '../cluster/with-cluster.js';
import type { Io } from '../io.js';

export function registerCancel(program: Command, io: Io): void {
  clusterOptions(program.command('cancel').summary('cancel a queued or running job').argument('<job>', 'the job ID')).action(
    async (job: string, opts: ClusterFlags) => {
      await withCluster(opts, async (nc, client) => {
        const { request } = await import('../cluster/connection.js');
        const { subjects } = await import('@cairn/contracts');
        const status = await request<JobStatus>(nc, subjects.client(client, 'cancel'), { job });
        io.out(status.state === 'cancelled' ? `${job} cancelled\n` : `${job}: cancel sent to ${status.worker ?? 'its worker'}\n`);
      });
    },
  );
}
