/**
 * The dry run: every step of a spec with the ID it will be stored under, computed
 * exactly as the engine computes it, without building anything. A step whose ID cannot
 * be known yet (it copies from a child build's output, or an input is missing) says why,
 * and so do the steps after it, whose parents are then unknown too.
 */
import { atom, list, locationOf, oneLine, printOp, type Op, type Position, type Spec } from '@cairn/spec';
import { applyContextOp, copyStepKey, initialContext, runStepKey, type BuildContext, type TargetOs } from './build-context.js';
import { generateManifest, ManifestError, type FileDigestCache } from './manifest.js';
import { baseId, CopyError, type Manifest, type SecretInput, type StepKey } from './step-id.js';

export interface PlanOptions {
  /** Directory that `copy` reads from; without it, copies from the context are unknown. */
  readonly contextDir?: string;
  /** Digests of the context's files from earlier runs (a ContextHashCache), and where this run's go. */
  readonly contextDigests?: FileDigestCache;
  /** The base image's env as `K=V` pairs, in image order. */
  readonly imageEnv?: readonly (readonly [string, string])[];
  /** Keyed digests of the secret values supplied, by secret ID (see `secretDigest`). */
  readonly secrets?: ReadonlyMap<string, string>;
  /** Initial user, workdir and shell follow the platform: `windows` or `unix` (default). */
  readonly os?: TargetOs;
  /** The trust domain whose caches the build mounts (the engine's BuildOptions.cacheDomain). */
  readonly cacheDomain?: string;
}

export type StepKind = 'base' | 'run' | 'copy' | 'context';

export interface PlanStep {
  /** Child build path (`dev`, `dev/tools`), or `` for the main spec. */
  readonly stage: string;
  readonly kind: StepKind;
  /** The op (or `(from IMAGE)`) on one line, as the build log heads it. */
  readonly op: string;
  /** Workdir in force when the op runs. */
  readonly workdir: string;
  /** The snapshot ID; absent when it cannot be known before building. */
  readonly id?: string;
  readonly parent?: string;
  /** The machine-form S-expression whose SHA-256 is the ID. */
  readonly hashInput?: string;
  /** Why the ID cannot be known before building. */
  readonly unknown?: string;
  /** Why the build would fail at this step (a missing source or secret). */
  readonly error?: string;
  /** Where the op (for a base step, its spec) is in the spec text, when it was read from text. */
  readonly pos?: Position;
}

export interface Plan {
  readonly steps: readonly PlanStep[];
  /** The final snapshot of the main spec, when every step is known. */
  readonly result?: string;
}

/** Why a parent snapshot is unknown, or its ID. */
type Parent = { id: string } | { unknown: string };

export async function planSpec(spec: Spec, options: PlanOptions = {}): Promise<Plan> {
  const steps: PlanStep[] = [];
  const final = await planStage(spec, '', new Map(), options, steps);
  return 'id' in final ? { steps, result: final.id } : { steps };
}

async function planStage(spec: Spec, stage: string, outer: ReadonlyMap<string, Parent>, options: PlanOptions, steps: PlanStep[]): Promise<Parent> {
  const builds = new Map(outer);
  for (const child of spec.childBuilds) {
    const path = stage ? `${stage}/${child.name}` : child.name;
    builds.set(child.name, await planStage(child.spec, path, builds, options, steps));
  }
  let ctx = initialContext(options.os ?? 'unix', options.imageEnv ?? []);
  let parent: Parent = { id: baseId(spec.from) };
  const specPos = locationOf(spec);
  steps.push({
    stage,
    kind: 'base',
    op: oneLine(list(atom('from'), atom(spec.from))),
    workdir: ctx.workdir,
    id: parent.id,
    hashInput: spec.from,
    ...(specPos ? { pos: specPos } : {}),
  });
  for (const op of spec.ops) {
    const pos = locationOf(op);
    const common = { stage, op: printOp(op).replace(/\n\s*/g, ' '), workdir: ctx.workdir, ...(pos ? { pos } : {}) };
    const next = applyContextOp(ctx, op);
    if (next) {
      ctx = next;
      steps.push({ ...common, kind: 'context' });
      continue;
    }
    const kind = op.op === 'run' ? 'run' : 'copy';
    if (!('id' in parent)) {
      steps.push({ ...common, kind, unknown: parent.unknown });
      continue;
    }
    const input = await keyOf(op, ctx, parent.id, builds, options);
    if (!('id' in input)) {
      steps.push({ ...common, kind, parent: parent.id, ...input });
      parent = { unknown: 'error' in input ? 'an earlier step fails' : `an earlier step is unknown: ${input.unknown}` };
      continue;
    }
    steps.push({ ...common, kind, parent: parent.id, id: input.id, hashInput: input.hashInput });
    parent = { id: input.id };
  }
  return parent;
}

type Key = StepKey | { unknown: string } | { error: string };

async function keyOf(op: Op, ctx: BuildContext, base: string, builds: ReadonlyMap<string, Parent>, options: PlanOptions): Promise<Key> {
  if (op.op === 'run') {
    const secrets: SecretInput[] = [];
    for (const s of op.secrets) {
      const digest = options.secrets?.get(s.id);
      if (digest === undefined) return { error: `no value supplied for secret "${s.id}" (use --secret ${s.id}:FILE)` };
      secrets.push({ target: s.target, digest });
    }
    return runStepKey(ctx, base, op, secrets, options.cacheDomain);
  }
  if (op.op !== 'copy') throw new Error(`not a snapshot op: ${op.op}`);
  if (op.from.kind === 'build') {
    const child = builds.get(op.from.name);
    const state = child && 'id' in child ? `after build "${op.from.name}" (${child.id.slice(0, 12)}) has run` : `after build "${op.from.name}" has run`;
    return { unknown: `it reads the output of a child build, known only ${state}` };
  }
  if (options.contextDir === undefined) return { unknown: 'no build context was given' };
  try {
    const items: Manifest[] = [];
    for (const src of op.src) items.push(await generateManifest(options.contextDir, src, op.exclude, options.contextDigests));
    return copyStepKey(ctx, base, items, op.dst);
  } catch (e) {
    if (e instanceof ManifestError || e instanceof CopyError) return { error: e.message };
    throw e;
  }
}
