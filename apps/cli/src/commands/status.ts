import type { Command } from 'commander';
import type { JobStatus } from '@cairn/contracts';
import type { ClusterFlags } from '../cluster/connection.js';
import { clusterOptions, withCluster } from '../cluster/with-cluster.js';
import type { Io } from '../io.js';

export function registerStatus(program: Command, io: Io): void {
  clusterOptions(
    program.command('status').summary("a job's state, worker and times").argument('<job>', 'the job ID').option('--json', 'print the status as JSON'),
  ).action(async (job: string, opts: ClusterFlags & { json?: boolean }) => {
    await withCluster(opts, async (nc, client) => {
      const { request } = await import('../cluster/connection.js');
      const { subjects } = await import('@cairn/contracts');
      const status = await request<JobStatus>(nc, subjects.client(client, 'status'), { job });
      io.out(opts.json ? `${JSON.stringify(status)}\n` : renderStatus(status));
    });
  });
}

function renderStatus(s: JobStatus): string {
  const time = (ms?: number) => (ms === undefined ? '-' : new Date(ms).toISOString());
  return [
    `job:       ${s.job} (${s.name})`,
    `state:     ${s.state}${s.failure ? ` — ${s.failure}` : ''}`,
    `pool:      ${s.pool}${s.worker ? ` on ${s.worker}` : ''}${s.urgent ? ' (urgent)' : ''}`,
    `attempts:  ${s.attempts}`,
    `submitted: ${time(s.submittedAt)}`,
    `started:   ${time(s.startedAt)}`,
    `finished:  ${time(s.finishedAt)}`,
    ...(s.snapshotId ? [`snapshot:  ${s.snapshotId}`] : []),
    '',
  ].join('\n');
}
