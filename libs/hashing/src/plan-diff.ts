/**
 * "Which steps would rebuild, and why": compares a plan with an earlier one, step by
 * step, and names the first-hand reasons an ID changed (the command, an env binding,
 * a copied file) rather than the inherited one (the parent changed).
 */
import { readSexp, toMachine, type Sexp } from '@cairn/spec';
import type { Plan, PlanStep } from './plan.js';

export type StepStatus = 'same' | 'changed' | 'added' | 'unknown';

export interface StepComparison {
  readonly step: PlanStep;
  readonly status: StepStatus;
  readonly reasons: readonly string[];
}

export function comparePlans(before: Plan, after: Plan): StepComparison[] {
  const previous = new Map<string, PlanStep[]>();
  for (const step of before.steps) previous.set(step.stage, [...(previous.get(step.stage) ?? []), step]);
  const seen = new Map<string, number>();
  return after.steps.map((step) => {
    const index = seen.get(step.stage) ?? 0;
    seen.set(step.stage, index + 1);
    const old = previous.get(step.stage)?.[index];
    return compareStep(old, step);
  });
}

function compareStep(old: PlanStep | undefined, step: PlanStep): StepComparison {
  if (step.kind === 'context') {
    return { step, status: old?.op === step.op ? 'same' : old ? 'changed' : 'added', reasons: [] };
  }
  if (step.id === undefined) return { step, status: 'unknown', reasons: [] };
  if (old === undefined) return { step, status: 'added', reasons: ['a new step'] };
  if (old.id === step.id) return { step, status: 'same', reasons: [] };
  if (old.hashInput === undefined || step.hashInput === undefined || old.kind !== step.kind) {
    return { step, status: 'changed', reasons: [`the step was ${old.op}`] };
  }
  if (step.kind === 'base') return { step, status: 'changed', reasons: [`the base image was ${old.hashInput}`] };
  return { step, status: 'changed', reasons: explain(readSexp(old.hashInput), readSexp(step.hashInput)) };
}

/** The record fields of a hash input: ((name value) ...). */
function fields(sexp: Sexp): Map<string, Sexp> {
  const out = new Map<string, Sexp>();
  if (sexp.kind !== 'list') return out;
  for (const f of sexp.items) {
    if (f.kind === 'list' && f.items[0]?.kind === 'atom' && f.items[1]) out.set(f.items[0].value, f.items[1]);
  }
  return out;
}

const same = (a: Sexp | undefined, b: Sexp | undefined) => (a ? toMachine(a) : '') === (b ? toMachine(b) : '');

function explain(before: Sexp, after: Sexp): string[] {
  const a = fields(before);
  const b = fields(after);
  const reasons: string[] = [];
  for (const name of new Set([...a.keys(), ...b.keys()])) {
    if (name === 'base' || same(a.get(name), b.get(name))) continue;
    if (name === 'env') reasons.push(...envChanges(a.get(name), b.get(name)));
    else if (name === 'op') reasons.push(...copyChanges(a.get(name), b.get(name)));
    else if (name === 'mount_secrets') reasons.push('a secret value or target changed');
    else if (name === 'cmd') reasons.push('the command changed');
    else reasons.push(`the ${name} changed`);
  }
  if (reasons.length === 0 && !same(a.get('base'), b.get('base'))) reasons.push('an earlier step changed');
  return reasons;
}

function pairs(sexp: Sexp | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (sexp?.kind !== 'list') return out;
  for (const p of sexp.items) {
    if (p.kind === 'list' && p.items[0]?.kind === 'atom' && p.items[1]?.kind === 'atom') out.set(p.items[0].value, p.items[1].value);
  }
  return out;
}

function envChanges(before: Sexp | undefined, after: Sexp | undefined): string[] {
  const a = pairs(before);
  const b = pairs(after);
  const changed = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k));
  return changed.length ? [`env ${changed.join(', ')} changed`] : ['the order of env bindings changed'];
}

/** Every file, symlink and directory named in a copy op, with what identifies it. */
function manifestEntries(sexp: Sexp | undefined, into = new Map<string, string>()): Map<string, string> {
  if (sexp?.kind !== 'list') return into;
  const [tag, body] = sexp.items;
  if (tag?.kind === 'atom' && body?.kind === 'list' && ['File', 'Symlink', 'Dir'].includes(tag.value)) {
    const [path, what] = body.items;
    if (path?.kind === 'atom') {
      if (tag.value === 'Dir') {
        into.set(`${path.value}/`, 'dir');
        if (what?.kind === 'list') for (const child of what.items) manifestEntries(child, into);
      } else into.set(path.value, `${tag.value}:${what ? toMachine(what) : ''}`);
      return into;
    }
  }
  for (const item of sexp.items) manifestEntries(item, into);
  return into;
}

function copyChanges(before: Sexp | undefined, after: Sexp | undefined): string[] {
  const a = manifestEntries(before);
  const b = manifestEntries(after);
  const list = (label: string, paths: string[]) =>
    paths.length ? [`${label}: ${paths.slice(0, 5).join(', ')}${paths.length > 5 ? ` and ${paths.length - 5} more` : ''}`] : [];
  const reasons = [
    ...list(
      'changed',
      [...b.keys()].filter((p) => a.has(p) && a.get(p) !== b.get(p)),
    ),
    ...list(
      'added',
      [...b.keys()].filter((p) => !a.has(p)),
    ),
    ...list(
      'removed',
      [...a.keys()].filter((p) => !b.has(p)),
    ),
  ];
  return reasons.length ? reasons : ['the destination changed'];
}
