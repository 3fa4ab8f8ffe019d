import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Option, type Command } from 'commander';
import type { NatsConnection } from '@nats-io/transport-node';
import type { JobState, JobStatus, Submitted } from '@cairn/contracts';
import { planSpec, secretDigest } from '@cairn/hashing';
import { EXIT, UserError } from '../cli-error.js';
import { collect, readInput, type Io } from '../io.js';
import type { ClusterFlags } from '../cluster/connection.js';
import { parseSpecText } from '../read-spec.js';
import { planFailure } from './plan.js';

/** How a followed job's end becomes the exit status. */
const EXIT_OF: Record<JobState, number> = { succeeded: EXIT.ok, failed: EXIT.userError, cancelled: EXIT.interrupted, queued: EXIT.ok, assigned: EXIT.ok, running: EXIT.ok };

export const clusterOptions = (cmd: Command) =>
  cmd
    .option('--nats <url>', 'NATS server(s), comma-separated (default: CAIRN_NATS, else the cluster cairn up runs, else nats://127.0.0.1:4222)')
    .option('--client <id>', 'your client ID, as NATS permissions know it (default: CAIRN_CLIENT, else your user name)');

/** Runs `body` with a connection (as the client, or as cairn up's admin); maps an unreachable cluster to exit 3. */
export async function withCluster(flags: ClusterFlags, setExit: (code: number) => void, io: Io, body: (nc: NatsConnection, client: string) => Promise<void>, as: 'client' | 'admin' = 'client'): Promise<void> {
  const { clientId, connectCluster, UnavailableError } = await import('../cluster/connection.js');
  const client = clientId(flags);
  let nc: NatsConnection | undefined;
  try {
    nc = await connectCluster(flags, client, as);
    await body(nc, client);
  } catch (e) {
    if (e instanceof UnavailableError) {
      io.err(`cairn: ${e.message}\n`);
      setExit(EXIT.unavailable);
      return;
    }
    throw e;
  } finally {
    await nc?.close();
  }
}

/**
 * Prints a job's log; with `follow`, until the job ends or the user presses Ctrl-C.
 * Ctrl-C stops following, not the job (it is the cluster's now): the user is told how to
 * cancel it or follow it again, unless `cancelOnInterrupt` asks for the job to go too.
 */
async function printLog(io: Io, nc: NatsConnection, client: string, job: string, opts: { follow: boolean; toStderr: boolean; cancelOnInterrupt?: boolean }): Promise<JobState | 'interrupted' | undefined> {
  const { followLog } = await import('../cluster/follow-log.js');
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
    const { request } = await import('../cluster/connection.js');
    const { subjects } = await import('@cairn/contracts');
    const status = await request<JobStatus>(nc, subjects.client(client, 'cancel'), { job });
    io.err(`\ncairn: interrupted: ${status.state === 'cancelled' ? `${job} cancelled` : `cancel of ${job} sent to ${status.worker ?? 'its worker'}`}\n`);
  } else {
    io.err(`\ncairn: stopped following ${job}; it keeps running on the cluster.\n  cancel it:     cairn cancel ${job}\n  follow again:  cairn logs ${job} --follow\n`);
  }
  return 'interrupted';
}

/** The exit status of a followed job; Ctrl-C is 130 like a cancelled job. */
const exitOf = (end: JobState | 'interrupted') => (end === 'interrupted' ? EXIT.interrupted : EXIT_OF[end]);

interface SubmitOpts extends ClusterFlags {
  pool: string;
  file: string;
  format?: 'sexp' | 'dockerfile';
  name?: string;
  urgent?: boolean;
  secret: string[];
  output: string[];
  timeout: string;
  cacheHint?: string;
  idempotencyKey?: string;
  follow?: boolean;
  cancelOnInterrupt?: boolean;
  json?: boolean;
}

export function registerCluster(program: Command, io: Io, setExit: (code: number) => void): void {
  clusterOptions(
    program
      .command('submit')
      .summary('send a build to a pool of workers')
      .description(`Submits a spec to the cluster: the spec-compiler checks it and pins its base images,
the scheduler queues it fairly among clients and sends it to a worker of the pool that
already holds its cache when one is free. The build context is uploaded once per content
(by SHA-256); secrets are sealed for the scheduler and reach only the worker that runs
the job. Prints the job ID; with --follow, streams the log until the job ends.`)
      .requiredOption('--pool <pool>', 'the pool to run on, e.g. linux-x86_64')
      .requiredOption('-f, --file <spec>', 'the spec file (an S-expression spec or a Dockerfile; - for stdin)')
      .argument('[context]', 'build context directory for (copy ...) steps')
      .addOption(new Option('--format <format>', 'spec format (default: dockerfile when the file name contains "Dockerfile", else sexp)').choices(['sexp', 'dockerfile']))
      .option('--name <name>', 'job name in the build history (default: the spec file name)')
      .option('--urgent', 'run before every normal job of the pool')
      .option('--secret <ID:FILE>', 'mount FILE for (secrets (ID ...)) (repeatable); sealed end to end, never stored in clear', collect, [])
      .option('--output <path>', 'a file of the final snapshot to keep as an artifact (repeatable)', collect, [])
      .option('--timeout <seconds>', 'fail the job after this long', '3600')
      .option('--cache-hint <hint>', 'jobs with the same hint go to the same worker (default: computed from the spec)')
      .option('--idempotency-key <key>', 'submitting again with the same key (a retried CI step) returns the first job instead of queueing another; default: one per invocation, so retries within it are safe')
      .option('--follow', 'stream the log and exit with the job: 0 succeeded, 1 failed, 130 cancelled; Ctrl-C stops following (the job keeps running) and says how to cancel it')
      .option('--cancel-on-interrupt', 'with --follow: Ctrl-C cancels the job too')
      .option('--json', 'print {"job", "cacheHint", "steps"} ("repeated": true when the idempotency key had made the job; "state" with --follow; the log goes to stderr)'),
  )
    .addHelpText('after', `
Exit status: 0 submitted (or succeeded, with --follow); 1 rejected (bad spec, unknown pool,
missing secret file, or a step that cairn plan says would fail: nothing is sent then) or
the build failed; 2 usage error; 3 the cluster could not be reached;
130 the job was cancelled, or Ctrl-C stopped --follow.

Examples:
  cairn submit --pool linux-x86_64 -f examples/hello.spec examples/hello --follow
  cairn submit --pool linux-x86_64 -f examples/hello.spec examples/hello --follow --cancel-on-interrupt
  cairn submit --pool linux-x86_64 -f Dockerfile . --output /usr/local/bin/app --json | jq -r .job
  cairn submit --pool linux-x86_64 -f build.spec . --secret npmrc:$HOME/.npmrc --urgent
  cairn submit --pool linux-x86_64 -f build.spec . --idempotency-key "ci-$PIPELINE_ID-build"   # a re-run CI step finds its job`)
    .action(async (context: string | undefined, opts: SubmitOpts) => {
      const specText = await readInput(io, opts.file, 'the spec');
      const format = opts.format ?? (/dockerfile/i.test(basename(opts.file)) ? 'dockerfile' : 'sexp');
      const secrets = await Promise.all(
        opts.secret.map(async (pair) => {
          const colon = pair.indexOf(':');
          if (colon <= 0) throw new UserError(`--secret takes ID:FILE, not "${pair}"`);
          const file = pair.slice(colon + 1);
          const value = await readFile(file).catch(() => {
            throw new UserError(`cannot read the secret file "${file}" for --secret ${pair.slice(0, colon)}`);
          });
          return { id: pair.slice(0, colon), value };
        }),
      );
      const timeout = Number(opts.timeout);
      if (!Number.isInteger(timeout) || timeout <= 0) throw new UserError(`--timeout takes a whole number of seconds, not "${opts.timeout}"`);
      // What `cairn plan` would reject, a worker would only fail: check it here, before
      // anything is uploaded or queued. Which secrets are given is all the check needs,
      // so their digests are stand-ins and the installation's secret key is not read.
      const spec = parseSpecText(specText, opts.file, format);
      const plan = await planSpec(spec, {
        ...(context === undefined ? {} : { contextDir: context }),
        secrets: new Map(secrets.map((s) => [s.id, secretDigest('stand-in', s.id)])),
      });
      const failure = planFailure(plan, opts.file);
      if (failure !== undefined) throw new UserError(failure);
      await withCluster(opts, setExit, io, async (nc, client) => {
        const { request } = await import('../cluster/connection.js');
        const { subjects, seal } = await import('@cairn/contracts');
        const context_ = context === undefined ? undefined : await (await import('../cluster/context-upload.js')).uploadContext(nc, context);
        const sealed = secrets.length
          ? await request<{ publicKey: string }>(nc, subjects.schedulerKey, {}).then(({ publicKey }) => secrets.map((s) => ({ id: s.id, sealed: seal(publicKey, s.value) })))
          : [];
        const submitted = await request<Submitted>(nc, subjects.client(client, 'submit'), {
          pool: opts.pool,
          spec: specText,
          format,
          name: opts.name ?? (opts.file === '-' ? 'stdin' : basename(opts.file)),
          urgent: opts.urgent ?? false,
          secrets: sealed,
          outputs: opts.output,
          timeoutSeconds: timeout,
          ...(context_ ? { contextDigest: context_.digest } : {}),
          ...(opts.cacheHint === undefined ? {} : { cacheHint: opts.cacheHint }),
          // The same key on every attempt `request` makes: a lost reply retried is not a second job.
          idempotencyKey: opts.idempotencyKey ?? randomUUID(),
        });
        if (!opts.json && submitted.repeated) io.err(`already submitted with idempotency key ${opts.idempotencyKey}: ${submitted.job} (nothing new queued)\n`);
        else if (!opts.json) io.err(`submitted ${submitted.job} to ${opts.pool} (${submitted.steps} steps${context_ ? `, context ${context_.digest.slice(0, 19)}… ${context_.uploaded ? 'uploaded' : 'already stored'}` : ''})\n`);
        if (!opts.follow) {
          io.out(opts.json ? `${JSON.stringify(submitted)}\n` : `${submitted.job}\n`);
          return;
        }
        const end = await printLog(io, nc, client, submitted.job, { follow: true, toStderr: opts.json ?? false, cancelOnInterrupt: opts.cancelOnInterrupt ?? false });
        if (end !== undefined) setExit(exitOf(end));
        // "interrupted" in the JSON: the job's own state is not known when following stopped.
        if (opts.json) io.out(`${JSON.stringify({ ...submitted, ...(end ? { state: end } : {}) })}\n`);
        else if (end !== 'interrupted') io.err(`${submitted.job} ${end ?? 'unknown'}\n`);
      });
    });

  clusterOptions(
    program
      .command('logs')
      .summary("print a job's log (from the start, also for a late --follow)")
      .argument('<job>', 'the job ID that submit printed')
      .option('--follow', 'keep printing until the job ends; exit with its result'),
  )
    .addHelpText('after', `
Exit status with --follow: 0 succeeded, 1 failed, 130 cancelled or Ctrl-C (which stops
following, not the job); 3 cluster unreachable.

Example:
  cairn logs j-m1abc2def3 --follow`)
    .action(async (job: string, opts: ClusterFlags & { follow?: boolean }) => {
      await withCluster(opts, setExit, io, async (nc, client) => {
        const end = await printLog(io, nc, client, job, { follow: opts.follow ?? false, toStderr: false });
        if (opts.follow && end) setExit(exitOf(end));
      });
    });

  clusterOptions(program.command('status').summary("a job's state, worker and times").argument('<job>', 'the job ID').option('--json', 'print the status as JSON')).action(
    async (job: string, opts: ClusterFlags & { json?: boolean }) => {
      await withCluster(opts, setExit, io, async (nc, client) => {
        const { request } = await import('../cluster/connection.js');
        const { subjects } = await import('@cairn/contracts');
        const status = await request<JobStatus>(nc, subjects.client(client, 'status'), { job });
        io.out(opts.json ? `${JSON.stringify(status)}\n` : renderStatus(status));
      });
    },
  );

  clusterOptions(program.command('cancel').summary('cancel a queued or running job').argument('<job>', 'the job ID')).action(async (job: string, opts: ClusterFlags) => {
    await withCluster(opts, setExit, io, async (nc, client) => {
      const { request } = await import('../cluster/connection.js');
      const { subjects } = await import('@cairn/contracts');
      const status = await request<JobStatus>(nc, subjects.client(client, 'cancel'), { job });
      io.out(status.state === 'cancelled' ? `${job} cancelled\n` : `${job}: cancel sent to ${status.worker ?? 'its worker'}\n`);
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

