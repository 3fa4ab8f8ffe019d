import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { comparePlans, planSpec, type Plan, type PlanStep, type StepComparison } from '@cairn/hashing';
import { EXIT, UserError } from '../cli-error.js';
import { collect, displayName, parsePair, type Io } from '../io.js';
import { openContextCache } from '../context-cache.js';
import { readSpec } from '../read-spec.js';
import { secretDigests } from '../secret-key.js';

interface PlanOpts {
  file: string;
  imageEnv: string[];
  secret: string[];
  os: 'unix' | 'windows';
  compare?: string;
  json?: boolean;
}

export function registerPlan(program: Command, io: Io, setExit: (code: number) => void): void {
  program
    .command('plan')
    .summary('show every step and its ID without building')
    .description(
      `The dry run: every step of the spec with the snapshot ID it will be stored under,
base image first, computed exactly as a build computes it. With --compare, says for each
step whether it would rebuild compared with an earlier plan, and why.`,
    )
    .requiredOption('-f, --file <spec>', 'the spec file (- for stdin)')
    .argument('[context]', 'build context directory for (copy ...) steps; without it their IDs are unknown')
    .option('--image-env <NAME=VALUE>', 'an env binding of the base image, in image order (repeatable); none by default', collect, [])
    .option('--secret <ID:FILE>', 'the value of secret ID, read from FILE (repeatable); only a keyed digest is used', collect, [])
    .addOption(new Option('--os <os>', 'initial user, workdir and shell of this platform').choices(['unix', 'windows']).default('unix'))
    .option('--compare <plan.json>', 'an earlier `cairn plan --json` output: report which steps would rebuild and why')
    .option('--json', 'print the plan as JSON (feed it to --compare later)')
    .addHelpText(
      'after',
      `
Exit status: 0 when every step can be planned; 1 when the build would fail (a missing
source file or secret) or the spec is invalid; 2 on a usage error.

Examples:
  cairn plan -f build.spec .
  cairn plan -f build.spec . --image-env PATH=/usr/bin:/bin --secret npmrc:$HOME/.npmrc
  cairn plan -f build.spec . --json > before.json; edit...; cairn plan -f build.spec . --compare before.json`,
    )
    .action(async (context: string | undefined, opts: PlanOpts) => {
      const { spec } = await readSpec(io, opts.file);
      const digests = context === undefined ? undefined : await openContextCache(context);
      const plan = await planSpec(spec, {
        ...(context === undefined ? {} : { contextDir: context, contextDigests: digests }),
        imageEnv: opts.imageEnv.map((e) => parsePair(e, '--image-env')),
        secrets: await secretDigests(opts.secret),
        os: opts.os,
      });
      await digests?.save();
      const comparison = opts.compare === undefined ? undefined : comparePlans(await readPlan(opts.compare), plan);
      if (opts.json)
        io.out(`${JSON.stringify(comparison ? { ...plan, comparison: comparison.map(({ status, reasons }) => ({ status, reasons })) } : plan, null, 2)}\n`);
      else io.out(renderPlan(plan, comparison));
      const failure = planFailure(plan, opts.file);
      if (failure !== undefined) {
        io.err(`cairn: ${failure}\n`);
        setExit(EXIT.failed);
      }
    });
}

/**
 * Why the build would fail, from its plan: the first failing step, with the spec file and
 * the step's line and column. `cairn plan` reports it; `cairn submit` refuses to send a
 * job that a worker would only fail.
 */
export function planFailure(plan: Plan, specPath: string): string | undefined {
  const failing = plan.steps.find((s) => s.error !== undefined);
  if (failing === undefined) return undefined;
  const at = failing.pos ? `:${failing.pos.line}:${failing.pos.column}` : '';
  const stage = failing.stage ? `[${failing.stage}] ` : '';
  return `${displayName(specPath)}${at}: the build would fail at ${stage}${failing.op}: ${failing.error}`;
}

async function readPlan(path: string): Promise<Plan> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new UserError(`cannot read the plan to compare with, "${path}": ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as Plan).steps)) {
    throw new UserError(`"${path}" is not the output of cairn plan --json (no "steps" array)`);
  }
  return parsed as Plan;
}

function renderPlan(plan: Plan, comparison: StepComparison[] | undefined): string {
  let out = '';
  plan.steps.forEach((step, i) => {
    const where = step.stage ? `[${step.stage}] ` : '';
    out += step.kind === 'base' ? `${where}${step.op}\n` : `${where}${step.workdir}: ${step.op}\n`;
    if (step.kind !== 'context') out += `    ---> ${idLine(step)}${status(comparison?.[i])}\n`;
  });
  out += plan.result ? `result: ${plan.result}\n` : 'result: unknown until the build runs\n';
  if (comparison) {
    const rebuild = comparison.filter((c) => c.step.kind !== 'context' && c.status !== 'same').length;
    out += `${rebuild} of ${comparison.filter((c) => c.step.kind !== 'context').length} snapshot steps would rebuild\n`;
  }
  return out;
}

function idLine(step: PlanStep): string {
  if (step.id) return step.id;
  if (step.error) return `fails: ${step.error}`;
  return `? (${step.unknown})`;
}

function status(c: StepComparison | undefined): string {
  if (!c || c.step.kind === 'context') return '';
  if (c.status === 'same') return '  (unchanged, cached)';
  if (c.status === 'unknown') return '';
  return `  (rebuilds: ${c.reasons.join('; ')})`;
}
