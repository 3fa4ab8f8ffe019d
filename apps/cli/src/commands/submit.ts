import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Option, type Command } from 'commander';
import type { Submitted } from '@cairn/contracts';
import { planSpec, secretDigest } from '@cairn/hashing';
import { EXIT_OF_JOB, UserError } from '../cli-error.js';
import type { ClusterFlags } from '../cluster/connection.js';
import { printLog } from '../cluster/print-log.js';
import { clusterOptions, withCluster } from '../cluster/with-cluster.js';
import { openContextCache } from '../context-cache.js';
import { collect, readInput, type Io } from '../io.js';
import { addLimitFlags, stepBounds, type LimitFlags } from '../limit-flags.js';
import { parseSpecText } from '../read-spec.js';
import { planFailure } from './plan.js';

interface SubmitOpts extends ClusterFlags, LimitFlags {
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

export function registerSubmit(program: Command, io: Io, setExit: (code: number) => void): void {
  const submit = program
    .command('submit')
    .summary('send a build to a pool of workers')
    .description(
      `Submits a spec to the cluster: the spec-compiler checks it and pins its base images,
the scheduler queues it fairly among clients and sends it to a worker of the pool that
already holds its cache when one is free. The build context is uploaded once per content
(by SHA-256); secrets are sealed for the scheduler and reach only the worker that runs
the job. Prints the job ID; with --follow, streams the log until the job ends. The limits
of each run step (--memory, --pids, --cpus, --disk, --step-timeout) are capped by the worker's.`,
    )
    .requiredOption('--pool <pool>', 'the pool to run on, e.g. linux-x86_64')
    .requiredOption('-f, --file <spec>', 'the spec file (an S-expression spec or a Dockerfile; - for stdin)')
    .argument('[context]', 'build context directory for (copy ...) steps')
    .addOption(
      new Option('--format <format>', 'spec format (default: dockerfile when the file name contains "Dockerfile", else sexp)').choices(['sexp', 'dockerfile']),
    )
    .option('--name <name>', 'job name in the build history (default: the spec file name)')
    .option('--urgent', 'run before every normal job of the pool')
    .option('--secret <ID:FILE>', 'mount FILE for (secrets (ID ...)) (repeatable); sealed end to end, never stored in clear', collect, [])
    .option('--output <path>', 'a file of the final snapshot to keep as an artifact (repeatable)', collect, [])
    .option('--timeout <seconds>', 'fail the job after this long', '3600');
  clusterOptions(
    addLimitFlags(submit)
      .option('--cache-hint <hint>', 'jobs with the same hint go to the same worker (default: computed from the spec)')
      .option(
        '--idempotency-key <key>',
        'submitting again with the same key (a retried CI step) returns the first job instead of queueing another; default: one per invocation, so retries within it are safe',
      )
      .option(
        '--follow',
        'stream the log and exit with the job: 0 succeeded, 1 failed, 130 cancelled; Ctrl-C stops following (the job keeps running) and says how to cancel it',
      )
      .option('--cancel-on-interrupt', 'with --follow: Ctrl-C cancels the job too')
      .option(
        '--json',
        'print {"job", "cacheHint", "steps"} ("repeated": true when the idempotency key had made the job; "state" with --follow; the log goes to stderr)',
      ),
  )
    .addHelpText(
      'after',
      `
Exit status: 0 submitted (or succeeded, with --follow); 1 rejected (bad spec, unknown pool,
missing secret file, or a step that cairn plan says would fail: nothing is sent then) or
the build failed; 2 usage error; 3 the cluster could not be reached;
130 the job was cancelled, or Ctrl-C stopped --follow.

Examples:
  cairn submit --pool linux-x86_64 -f examples/hello.spec examples/hello --follow
  cairn submit --pool linux-x86_64 -f examples/hello.spec examples/hello --follow --cancel-on-interrupt
  cairn submit --pool linux-x86_64 -f Dockerfile . --output /usr/local/bin/app --json | jq -r .job
  cairn submit --pool linux-x86_64 -f build.spec . --secret npmrc:$HOME/.npmrc --urgent
  cairn submit --pool linux-x86_64 -f build.spec . --idempotency-key "ci-$PIPELINE_ID-build"   # a re-run CI step finds its job`,
    )
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
      const bounds = await stepBounds(opts);
      const timeout = Number(opts.timeout);
      if (!Number.isInteger(timeout) || timeout <= 0) throw new UserError(`--timeout takes a whole number of seconds, not "${opts.timeout}"`);
      // What `cairn plan` would reject, a worker would only fail: check it here, before
      // anything is uploaded or queued. Which secrets are given is all the check needs,
      // so their digests are stand-ins and the installation's secret key is not read.
      const spec = parseSpecText(specText, opts.file, format);
      const digests = context === undefined ? undefined : await openContextCache(context);
      const plan = await planSpec(spec, {
        ...(context === undefined ? {} : { contextDir: context, contextDigests: digests }),
        secrets: new Map(secrets.map((s) => [s.id, secretDigest('stand-in', s.id)])),
      });
      await digests?.save();
      const failure = planFailure(plan, opts.file);
      if (failure !== undefined) throw new UserError(failure);
      // One trace ID for the submission: the services' log lines about it carry it (contracts' trace.ts).
      const { newTraceId, withTrace } = await import('@cairn/contracts');
      const trace = newTraceId();
      await withTrace(trace, () =>
        withCluster(opts, async (nc, client) => {
          const { request } = await import('../cluster/connection.js');
          const { subjects, seal } = await import('@cairn/contracts');
          const context_ = context === undefined ? undefined : await (await import('../cluster/context-upload.js')).uploadContext(nc, client, context);
          const sealed = secrets.length
            ? await request<{ publicKey: string }>(nc, subjects.schedulerKey, {}).then(({ publicKey }) =>
                secrets.map((s) => ({ id: s.id, sealed: seal(publicKey, s.value) })),
              )
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
            ...bounds,
            ...(context_ ? { contextDigest: context_.digest } : {}),
            ...(opts.cacheHint === undefined ? {} : { cacheHint: opts.cacheHint }),
            // The same key on every attempt `request` makes: a lost reply retried is not a second job.
            idempotencyKey: opts.idempotencyKey ?? randomUUID(),
          });
          if (!opts.json && submitted.repeated)
            io.err(`already submitted with idempotency key ${opts.idempotencyKey}: ${submitted.job} (nothing new queued)\n`);
          else if (!opts.json)
            io.err(
              `submitted ${submitted.job} to ${opts.pool} (${submitted.steps} steps${context_ ? `, context ${context_.digest.slice(0, 19)}… ${context_.uploaded ? 'uploaded' : 'already stored'}` : ''}, trace ${trace})\n`,
            );
          if (!opts.follow) {
            io.out(opts.json ? `${JSON.stringify(submitted)}\n` : `${submitted.job}\n`);
            return;
          }
          const end = await printLog(io, nc, client, submitted.job, {
            follow: true,
            toStderr: opts.json ?? false,
            cancelOnInterrupt: opts.cancelOnInterrupt ?? false,
          });
          if (end !== undefined) setExit(EXIT_OF_JOB[end]);
          // "interrupted" in the JSON: the job's own state is not known when following stopped.
          if (opts.json) io.out(`${JSON.stringify({ ...submitted, ...(end ? { state: end } : {}) })}\n`);
          else if (end !== 'interrupted') io.err(`${submitted.job} ${end ?? 'unknown'}\n`);
        }),
      );
    });
}
