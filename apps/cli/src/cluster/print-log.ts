import type { NatsConnection } from '@nats-io/transport-node';
import type { JobState, JobStatus } from '@cairn/contracts';
import type { Io } from '../io.js';

/**
 * Prints a job's log; with `follow`, until the job ends or the user presses Ctrl-C.
 * Ctrl-C stops following, not the job (it is the cluster's now): the user is told how to
 * cancel it or follow it again, unless `cancelOnInterrupt` asks for the job to go too.
 */
export async function printLog(
  io: Io,
  nc: NatsConnection,
  client: string,
  job: string,
  opts: { follow: boolean; toStderr: boolean; cancelOnInterrupt?: boolean },
): Promise<JobState | 'interrupted' | undefined> {
  const { followLog } = await import('./follow-log.js');
  const log = followLog(nc, client, job, opts.follow);
  let interrupted!: () => void;
  const interrupt = new Promise<'interrupted'>((resolve) => (interrupted = () => resolve('interrupted')));
  if (opts.follow) {
    process.once('SIGINT', interrupted);
    process.once('SIGTERM', interrupted);
  }
  try {
    for (;;) {
      const next = await Promise.race([log.next(), interrupt]);
      if (next === 'interrupted') break;
      if (next.done) return next.value;
      if (opts.toStderr) io.err(next.value.text);
      else io.out(next.value.text);
    }
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
  }
  // The generator may be waiting for a chunk; it unsubscribes when the connection closes.
  void log.return(undefined);
  if (opts.cancelOnInterrupt) {
    const { request } = await import('./connection.js');
    const { subjects } = await import('@cairn/contracts');
    const status = await request<JobStatus>(nc, subjects.client(client, 'cancel'), { job });
    io.err(`\ncairn: interrupted: ${status.state === 'cancelled' ? `${job} cancelled` : `cancel of ${job} sent to ${status.worker ?? 'its worker'}`}\n`);
  } else {
    io.err(
      `\ncairn: stopped following ${job}; it keeps running on the cluster.\n  cancel it:     cairn cancel ${job}\n  follow again:  cairn logs ${job} --follow\n`,
    );
  }
  return 'interrupted';
}
