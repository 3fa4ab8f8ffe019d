/**
 * Two builds side by side: how their specs differ, which steps differ (aligned by op,
 * so an inserted step does not shift every row after it), and how long each step took.
 * A step whose ID changed is the interesting one: step IDs chain, so the first changed
 * step is where the builds part ways and every later ID differs because of it.
 */
import { diff, type DiffOp } from './line-diff.js';
import type { BuildDetail } from './build-queries.js';

type Step = BuildDetail['steps'][number];

export interface StepPair {
  readonly stage: string;
  /** B's op (A's when the step is in A only). */
  readonly op: string;
  /** A's op when the two builds ran a different op at this place. */
  readonly opBefore?: string;
  readonly a?: Step;
  readonly b?: Step;
  /** IDs differ, or the step is in one build only. */
  readonly changed: boolean;
  /** b's time minus a's, when both ran it. */
  readonly deltaMs?: number;
}

export interface Comparison {
  readonly a: BuildDetail;
  readonly b: BuildDetail;
  readonly specDiff: DiffOp<string>[];
  readonly specChanged: boolean;
  readonly steps: StepPair[];
  /** Index in `steps` of the first changed step. */
  readonly firstChange?: number;
  readonly durationDeltaMs: number;
}

export function compareBuilds(a: BuildDetail, b: BuildDetail): Comparison {
  const specDiff = diff(a.spec.split('\n'), b.spec.split('\n'));
  const aligned = diff(a.steps, b.steps, (s) => `${s.stage}\u0000${s.op}`);
  const steps: StepPair[] = [];
  // Between two equal steps, A's removed ops and B's added ones are paired in order: an
  // edited command shows as one changed row, not as a removal and an addition.
  let removed: Step[] = [];
  let added: Step[] = [];
  const flush = () => {
    for (let i = 0; i < Math.max(removed.length, added.length); i++) {
      const a = removed[i];
      const b = added[i];
      if (a && b) steps.push({ stage: b.stage, op: b.op, opBefore: a.op, a, b, changed: true, deltaMs: b.ms - a.ms });
      else if (a) steps.push({ stage: a.stage, op: a.op, a, changed: true });
      else if (b) steps.push({ stage: b.stage, op: b.op, b, changed: true });
    }
    removed = [];
    added = [];
  };
  for (const op of aligned) {
    if (op.kind === 'removed') removed.push(op.a);
    else if (op.kind === 'added') added.push(op.b);
    else {
      flush();
      steps.push({ stage: op.a.stage, op: op.a.op, a: op.a, b: op.b, changed: op.a.stepId !== op.b.stepId, deltaMs: op.b.ms - op.a.ms });
    }
  }
  flush();
  const first = steps.findIndex((s) => s.changed);
  return {
    a,
    b,
    specDiff,
    specChanged: specDiff.some((d) => d.kind !== 'same'),
    steps,
    ...(first >= 0 ? { firstChange: first } : {}),
    durationDeltaMs: b.durationMs - a.durationMs,
  };
}

/** A comparison as the JSON API gives it (`GET /api/v1/compare`). */
export function comparisonJson(c: Comparison): unknown {
  return {
    a: c.a.id,
    b: c.b.id,
    specChanged: c.specChanged,
    specDiff: c.specDiff.map((d) =>
      d.kind === 'same' ? { kind: d.kind, line: d.a } : d.kind === 'removed' ? { kind: d.kind, line: d.a } : { kind: d.kind, line: d.b },
    ),
    steps: c.steps.map((s) => ({
      stage: s.stage,
      op: s.op,
      opBefore: s.opBefore ?? null,
      a: s.a?.stepId ?? null,
      b: s.b?.stepId ?? null,
      changed: s.changed,
      msA: s.a?.ms ?? null,
      msB: s.b?.ms ?? null,
      deltaMs: s.deltaMs ?? null,
    })),
    firstChange: c.firstChange ?? null,
    durationDeltaMs: c.durationDeltaMs,
  };
}
