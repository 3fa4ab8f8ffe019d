import { ROOT_UNIX, ROOT_WINDOWS, type Op, type RunOp, type User } from '@cairn/spec';
import { copyStepKeyOf, runHashInput, stepKey, type Manifest, type RunInput, type SecretInput, type StepKey } from './step-id.js';

/**
 * What the ops before a step have set up for it: the workdir, user, env and shell.
 * The planner and the engine both walk a spec with these functions, so that a plan's
 * IDs are the IDs a build will produce.
 */
export interface BuildContext {
  readonly workdir: string;
  readonly user: User;
  /** Newest binding first; the base image's env last. */
  readonly env: readonly (readonly [string, string])[];
  readonly shell: readonly string[];
}

export type TargetOs = 'unix' | 'windows';

export function initialContext(os: TargetOs, imageEnv: readonly (readonly [string, string])[]): BuildContext {
  const windows = os === 'windows';
  return {
    workdir: windows ? 'C:/' : '/',
    user: windows ? ROOT_WINDOWS : ROOT_UNIX,
    env: [...imageEnv],
    shell: windows ? ['cmd', '/S', '/C'] : ['/usr/bin/env', 'bash', '-c'],
  };
}

/** The context after an op that makes no snapshot; undefined for `run` and `copy`. */
export function applyContextOp(ctx: BuildContext, op: Op): BuildContext | undefined {
  switch (op.op) {
    case 'comment':
      return ctx;
    // OBuilder joins with "/" without normalising; IDs depend on the exact string.
    case 'workdir':
      return { ...ctx, workdir: isAbsolute(op.path) ? op.path : `${ctx.workdir}/${op.path}` };
    case 'shell':
      return { ...ctx, shell: op.args };
    case 'user':
      return { ...ctx, user: op.user };
    case 'env':
      return { ...ctx, env: [[op.name, op.value], ...ctx.env.filter(([k]) => k !== op.name)] };
    default:
      return undefined;
  }
}

/** `/x`, or a Windows drive path `C:/x` or `C:\x`. */
export function isAbsolute(path: string): boolean {
  return path.startsWith('/') || /^[A-Za-z]:[/\\]/.test(path);
}

/** OCaml's Filename.concat, which OBuilder uses to place a relative copy destination. */
export function copyDestination(ctx: BuildContext, dst: string): string {
  if (isAbsolute(dst)) return dst;
  return ctx.workdir === '' || ctx.workdir.endsWith('/') ? ctx.workdir + dst : `${ctx.workdir}/${dst}`;
}

/**
 * The hash input of a run step; `secrets` are keyed digests in the op's order. A step
 * that mounts caches of trust domain `cacheDomain` (a cluster job's) is that domain's
 * alone: its ID names the domain (step-id.ts RunInput).
 */
function runInputOf(ctx: BuildContext, base: string, op: RunOp, secrets: readonly SecretInput[], cacheDomain?: string): RunInput {
  const input = { base, workdir: ctx.workdir, user: ctx.user, env: ctx.env, cmd: op.shell, shell: ctx.shell, network: op.network, secrets };
  return cacheDomain === undefined || op.cache.length === 0 ? input : { ...input, cacheDomain };
}

/** The key of run step `op` on snapshot `base`; `secrets` as for runInputOf. */
export function runStepKey(ctx: BuildContext, base: string, op: RunOp, secrets: readonly SecretInput[], cacheDomain?: string): StepKey {
  return stepKey(runHashInput(runInputOf(ctx, base, op, secrets, cacheDomain)));
}

/** The key of a copy step on `base` of the sources' manifests `items` to `dst` as the op writes it. */
export function copyStepKey(ctx: BuildContext, base: string, items: readonly Manifest[], dst: string): StepKey {
  return copyStepKeyOf({ base, user: ctx.user, items, dst: copyDestination(ctx, dst) });
}
