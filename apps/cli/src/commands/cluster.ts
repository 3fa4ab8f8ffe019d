import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Option, type Command } from 'commander';
import type { NatsConnection } from '@nats-io/transport-node';
import type { JobState, JobStatus, Submitted } from '@cairn/contracts';
import { planSpec } from '@cairn/hashing';
import { UserError } from '../cli-error.js';
import { collect, readInput, type Io } from '../io.js';
import type { ClusterFlags } from '../cluster/connection.js';
import { parseSpecText } from '../read-spec.js';
import { planFailure } from './plan.js';

/** Exit codes of the cluster commands, beyond EXIT: the cluster could not be reached. */
export const EXIT_UNAVAILABLE = 3;
const EXIT_OF: Record<JobState, number> = { succeeded: 0, failed: 1, cancelled: 130, queued: 0, assigned: 0, running: 0 };

export const clusterOptions = (cmd: Command) =>
  cmd
    .option('--nats <url>', 'NATS server(s), comma-separated (default: CAIRN_NATS, else the cluster cairn up runs, else nats://127.0.0.1:4222)')
    .option('--client <id>', 'your client ID, as NATS permissions know it (default: CAIRN_CLIENT, else your user name)');

/** Runs `body` with a connection; maps an unreachable cluster to exit 3. */
export async function withCluster(flags: ClusterFlags, setExit: (code: number) => void, io: Io, body: (nc: NatsConnection, client: string) => Promise<void>): Promise<void> {
  const { clientId, connectCluster, UnavailableError } = await import('../cluster/connection.js');
  const client = clientId(flags);
  let nc: NatsConnection | undefined;
  try {
    nc = await connectCluster(flags, client);
    await body(nc, client);
  } catch (e) {
    if (e instanceof UnavailableError) {
      io.err(`cairn: ${e.message}\n`);
      setExit(EXIT_UNAVAILABLE);
      return;
    }
    throw e;
  } finally {
    await nc?.close();
  }
}

async function printLog(io: Io, nc: NatsConnection, client: string, job: string, follow: boolean, toStderr: boolean): Promise<JobState | undefined> {
  const { followLog } = await import('../cluster/follow-log.js');
  const log = followLog(nc, client, job, follow);
  for (;;) {
    const next = await log.next();
    if (next.done) return next.value;
    if (toStderr) io.err(next.value.text);
    else io.out(next.value.text);
  }
}

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
      .option('--follow', 'stream the log and exit with the job: 0 succeeded, 1 failed, 130 cancelled')
      .option('--json', 'print {"job", "cacheHint", "steps"} ("repeated": true when the idempotency key had made the job; "state" with --follow; the log goes to stderr)'),
  )
    .addHelpText('after', `
Exit status: 0 submitted (or succeeded, with --follow); 1 rejected (bad spec, unknown pool,
missing secret file, or a step that cairn plan says would fail: nothing is sent then) or
the build failed; 2 usage error; 3 the cluster could not be reached;
130 the job was cancelled.

Examples:
  cairn submit --pool linux-x86_64 -f examples/hello.spec examples/hello --follow
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
        secrets: new Map(secrets.map((s) => [s.id, 'given'])),
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
        let state: JobState | undefined;
        if (opts.follow) {
          state = await printLog(io, nc, client, submitted.job, true, opts.json ?? false);
          if (state) setExit(EXIT_OF[state]);
        }
        if (opts.json) io.out(`${JSON.stringify({ ...submitted, ...(state ? { state } : {}) })}\n`);
        else if (!opts.follow) io.out(`${submitted.job}\n`);
        else io.err(`${submitted.job} ${state ?? 'unknown'}\n`);
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
Exit status with --follow: 0 succeeded, 1 failed, 130 cancelled; 3 cluster unreachable.

Example:
  cairn logs j-m1abc2def3 --follow`)
    .action(async (job: string, opts: ClusterFlags & { follow?: boolean }) => {
      await withCluster(opts, setExit, io, async (nc, client) => {
        const state = await printLog(io, nc, client, job, opts.follow ?? false, false);
        if (opts.follow && state) setExit(EXIT_OF[state]);
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

