import { RejectedError, type Compiled, type PlannedStep } from '@cairn/contracts';
import { planSpec, type PlanStep } from '@cairn/hashing';
import { parseSpec, printSpec, specOfDockerfile, SpecError, type Spec } from '@cairn/spec';
import { pinImages, type ImageResolver } from './pin-images.js';

export type SpecFormat = 'sexp' | 'dockerfile';

/**
 * Spec text in, the job's compiled form out: the canonical spec with pinned base images,
 * its step plan and its cache hint. A spec that does not parse is an `invalid-spec`
 * rejection carrying libs/spec's `line:column: reason`; a base image that cannot be
 * resolved is a `not-found` rejection naming the image and its stage.
 */
export async function compileSpec(text: string, format: SpecFormat, resolve: ImageResolver): Promise<Compiled> {
  const parsed = parse(text, format);
  const { spec, images } = await pinImages(parsed, resolve);
  // Without a context, copies from it have unknown IDs, and so do the steps after them.
  const plan = await planSpec(spec);
  return {
    canonical: printSpec(spec),
    images,
    steps: plan.steps.map(plannedStep),
    cacheHint: cacheHintOf(spec, plan.steps),
  };
}

function parse(text: string, format: SpecFormat): Spec {
  try {
    return format === 'dockerfile' ? specOfDockerfile(text) : parseSpec(text);
  } catch (e) {
    if (e instanceof SpecError) throw new RejectedError('invalid-spec', e.message);
    throw e;
  }
}

function plannedStep(step: PlanStep): PlannedStep {
  // With no secret values at compile time, a step mounting secrets "fails" in the plan:
  // for the job it is only a step whose ID the worker will know.
  const unknown = step.unknown ?? step.error;
  return {
    stage: step.stage,
    kind: step.kind,
    op: step.op,
    ...(step.id === undefined ? {} : { id: step.id }),
    ...(unknown === undefined ? {} : { unknown }),
  };
}

/**
 * The snapshot that jobs of this spec share with each other: the last step of the main
 * spec before it first copies from the build context (the "environment" part, typically
 * the base image and package installs), else its last step with a known ID. Jobs with
 * the same hint reuse each other's cache, so the scheduler keeps them on one worker.
 */
export function cacheHintOf(spec: Spec, steps: readonly PlanStep[]): string {
  // planSpec emits the main spec's base step, then one step per op, after every child's.
  const main = steps.filter((s) => s.stage === '');
  let hint = main[0]?.id;
  if (hint === undefined) throw new Error('planSpec gave the main spec no base step');
  for (const [i, op] of spec.ops.entries()) {
    if (op.op === 'copy' && op.from.kind === 'context') break;
    const id = main[i + 1]?.id;
    if (id !== undefined) hint = id;
  }
  return hint;
}
