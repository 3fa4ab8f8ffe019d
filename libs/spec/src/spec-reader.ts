import type { ChildBuild, CopySource, Mount, Op, Spec, User } from './ast.js';
import { didYouMean } from './did-you-mean.js';
import type { Atom, List, Position, Sexp } from './sexp.js';
import { readSexp } from './sexp-reader.js';
import { oneLineStart } from './spec-printer.js';
import { SpecError } from './spec-error.js';

/**
 * Turns spec text into the AST, enforcing every rule of SPEC-LANGUAGE.md. The first
 * problem found is thrown as a SpecError naming the form, its line and its column.
 */
export function parseSpec(text: string, file?: string): Spec {
  try {
    return specOfSexp(readSexp(text));
  } catch (e) {
    if (e instanceof SpecError && file) throw e.inFile(file);
    throw e;
  }
}

/** Where an op, child build or spec was read from, when it was read from text. */
export function locationOf(node: Op | ChildBuild | Spec): Position | undefined {
  return locations.get(node);
}

const locations = new WeakMap<object, Position>();
const START: Position = { line: 1, column: 1 };

const OP_NAMES = ['comment', 'workdir', 'shell', 'run', 'copy', 'user', 'env'] as const;

export function specOfSexp(sexp: Sexp): Spec {
  const spec = readSpec(sexp, 'the spec');
  validateScopes(spec, []);
  return spec;
}

function fail(reason: string, at: Sexp | undefined): never {
  throw new SpecError(reason, at?.pos ?? START);
}

/** A form quoted in an error: its start only, laid out no further than shown. */
function show(sexp: Sexp): string {
  const text = oneLineStart(sexp, 72);
  return text.length > 72 ? `${text.slice(0, 69)}...` : text;
}

function asList(sexp: Sexp, what: string): List {
  if (sexp.kind !== 'list') fail(`expected ${what} but found the atom ${show(sexp)}`, sexp);
  return sexp;
}

function asAtom(sexp: Sexp | undefined, what: string, form: Sexp): Atom {
  if (sexp === undefined) fail(`${what} is missing in ${show(form)}`, form);
  if (sexp.kind !== 'atom') fail(`expected ${what} but found ${show(sexp)} in ${show(form)}`, sexp);
  return sexp;
}

function headName(sexp: Sexp): string | undefined {
  return sexp.kind === 'list' && sexp.items[0]?.kind === 'atom' ? sexp.items[0].value : undefined;
}

function readSpec(sexp: Sexp, what: string): Spec {
  const items = asList(sexp, `${what} as a list ((from IMAGE) OP...)`).items;
  const childBuilds: ChildBuild[] = [];
  let i = 0;
  for (; i < items.length && headName(items[i]!) === 'build'; i++) {
    childBuilds.push(readChildBuild(items[i]!));
  }
  const fromForm = items[i];
  if (fromForm === undefined) fail(`${what} has no (from IMAGE)${childBuilds.length ? ' after its (build ...) stages' : ''}`, sexp);
  if (headName(fromForm) !== 'from') {
    const name = headName(fromForm);
    const known = name !== undefined && (OP_NAMES as readonly string[]).includes(name);
    fail(
      known
        ? `${show(fromForm)} comes before (from IMAGE); every op must follow the (from ...) of its spec`
        : `expected (build NAME SPEC) or (from IMAGE) but found ${show(fromForm)}${name ? didYouMean(name, ['build', 'from']) : ''}`,
      fromForm,
    );
  }
  const fromItems = (fromForm as List).items;
  if (fromItems.length !== 2) fail(`(from ...) takes exactly one image name, in ${show(fromForm)}`, fromForm);
  const from = asAtom(fromItems[1], 'the image name', fromForm).value;
  const ops: Op[] = [];
  for (const form of items.slice(i + 1)) {
    const name = headName(form);
    if (name === 'from') fail(`a second (from ...) in one spec: ${show(form)}; use (build NAME ...) for another stage`, form);
    if (name === 'build') fail(`(build ...) must come before (from ...): ${show(form)}`, form);
    const op = readOp(form);
    locations.set(op, form.pos ?? START);
    ops.push(op);
  }
  const spec: Spec = { childBuilds, from, ops };
  locations.set(spec, sexp.pos ?? START);
  return spec;
}

function readChildBuild(form: Sexp): ChildBuild {
  const items = (form as List).items;
  if (items.length !== 3) fail(`(build NAME SPEC) takes a name and a spec, in ${show(form)}`, form);
  const name = asAtom(items[1], 'the build name', form).value;
  const child: ChildBuild = { name, spec: readSpec(items[2]!, `the spec of build "${name}"`) };
  locations.set(child, form.pos ?? START);
  return child;
}

function readOp(form: Sexp): Op {
  const items = asList(form, 'an op like (run (shell CMD))').items;
  const head = items[0];
  if (head === undefined) fail('an empty list () is not an op', form);
  if (head.kind !== 'atom') fail(`an op starts with its name, not ${show(head)}`, head);
  const args = items.slice(1);
  switch (head.value) {
    case 'comment':
      return { op: 'comment', text: single(args, 'the comment text', form) };
    case 'workdir':
      return { op: 'workdir', path: single(args, 'the directory', form) };
    case 'shell':
      return { op: 'shell', args: args.map((a) => asAtom(a, 'a shell argument', form).value) };
    case 'env': {
      if (args.length !== 2) fail(`(env NAME VALUE) takes exactly two atoms, in ${show(form)}`, form);
      return { op: 'env', name: asAtom(args[0], 'the variable name', form).value, value: asAtom(args[1], 'the value', form).value };
    }
    case 'user':
      return { op: 'user', user: readUser(args, form) };
    case 'run':
      return readRun(args, form);
    case 'copy':
      return readCopy(args, form);
    default: {
      const lower = head.value.toLowerCase();
      const hint = (OP_NAMES as readonly string[]).includes(lower) ? `; op names are lower case: "${lower}"` : didYouMean(head.value, OP_NAMES);
      fail(`unknown op "${head.value}" in ${show(form)}${hint}`, head);
    }
  }
}

function single(args: readonly Sexp[], what: string, form: Sexp): string {
  if (args.length !== 1) fail(`expected exactly one atom (${what}) in ${show(form)}`, form);
  return asAtom(args[0], what, form).value;
}

/** OCaml's int_of_string, which OBuilder uses for uid and gid. */
function readInt(sexp: Sexp | undefined, what: string, form: Sexp): number {
  const text = asAtom(sexp, what, form).value;
  const m = /^([-+]?)(0[xX][0-9a-fA-F][0-9a-fA-F_]*|0[oO][0-7][0-7_]*|0[bB][01][01_]*|[0-9][0-9_]*)$/.exec(text);
  const digits = m?.[2]?.replace(/_/g, '');
  const value = digits === undefined ? NaN : Number(/^0[oObB]/.test(digits) ? `0${digits[1]!.toLowerCase()}${digits.slice(2)}` : digits);
  if (!Number.isSafeInteger(value)) fail(`${what} must be an integer, not "${text}", in ${show(form)}`, sexp);
  return m?.[1] === '-' ? -value : value;
}

function readUser(args: readonly Sexp[], form: Sexp): User {
  const [a, b] = args;
  if (args.length === 1 && a && headName(a) === 'name') {
    const items = (a as List).items;
    if (items.length !== 2) fail(`(name TEXT) takes exactly one atom, in ${show(form)}`, a);
    return { kind: 'windows', name: asAtom(items[1], 'the user name', form).value };
  }
  if (args.length === 2 && a && b && headName(a) === 'uid' && headName(b) === 'gid') {
    const ua = (a as List).items;
    const gb = (b as List).items;
    if (ua.length !== 2) fail(`(uid INT) takes exactly one integer, in ${show(form)}`, a);
    if (gb.length !== 2) fail(`(gid INT) takes exactly one integer, in ${show(form)}`, b);
    return { kind: 'unix', uid: readInt(ua[1], 'the uid', form), gid: readInt(gb[1], 'the gid', form) };
  }
  fail(`a user is (user (uid INT) (gid INT)), in that order, or (user (name TEXT)); found ${show(form)}`, form);
}

type FieldSpec = Record<string, { mandatory: boolean }>;

/** Record fields of run, copy and mounts: any order, none twice, none unknown. */
function readFields(args: readonly Sexp[], spec: FieldSpec, form: Sexp, what: string): Map<string, List> {
  const found = new Map<string, List>();
  for (const arg of args) {
    const name = headName(arg);
    if (name === undefined) fail(`expected a field like (${Object.keys(spec).join(' ...) or (')} ...) in ${what}, found ${show(arg)}`, arg);
    if (!(name in spec)) fail(`unknown field "${name}" in ${what} ${show(form)}${didYouMean(name, Object.keys(spec))}`, arg);
    if (found.has(name)) fail(`field "${name}" is given twice in ${what} ${show(form)}`, arg);
    found.set(name, arg as List);
  }
  for (const [name, { mandatory }] of Object.entries(spec)) {
    if (mandatory && !found.has(name)) fail(`${what} is missing its mandatory (${name} ...) field: ${show(form)}`, form);
  }
  return found;
}

function atomsOf(field: List | undefined, what: string, form: Sexp): string[] {
  return field ? field.items.slice(1).map((x) => asAtom(x, what, form).value) : [];
}

function singleField(field: List, what: string, form: Sexp): Sexp {
  if (field.items.length !== 2) fail(`(${(field.items[0] as Atom).value} ...) takes exactly one ${what}, in ${show(form)}`, field);
  return field.items[1]!;
}

function readMount(sexp: Sexp, kind: 'cache' | 'secret', form: Sexp): Mount {
  const what = `${kind} (ID (target PATH))`;
  const items = asList(sexp, `a ${what}`).items;
  const id = asAtom(items[0], `the ${kind} id`, sexp).value;
  const fields = readFields(items.slice(1), { target: { mandatory: true }, buildkit_options: { mandatory: false } }, sexp, `${kind} "${id}"`);
  const target = asAtom(singleField(fields.get('target')!, 'path', sexp), 'the target path', sexp).value;
  const optsField = fields.get('buildkit_options');
  const buildkitOptions: [string, string][] = [];
  if (optsField) {
    const opts = asList(singleField(optsField, 'list of (KEY VALUE) pairs', sexp), 'a list of (KEY VALUE) pairs');
    for (const pair of opts.items) {
      const kv = asList(pair, 'a (KEY VALUE) pair').items;
      if (kv.length !== 2) fail(`a buildkit option is a (KEY VALUE) pair, not ${show(pair)}, in ${show(form)}`, pair);
      buildkitOptions.push([asAtom(kv[0], 'the option key', pair).value, asAtom(kv[1], 'the option value', pair).value]);
    }
  }
  return { id, target, buildkitOptions };
}

function readRun(args: readonly Sexp[], form: Sexp): Op {
  const fields = readFields(
    args,
    {
      cache: { mandatory: false },
      network: { mandatory: false },
      secrets: { mandatory: false },
      shell: { mandatory: true },
    },
    form,
    'run',
  );
  const mounts = (name: 'cache' | 'secrets') => (fields.get(name)?.items.slice(1) ?? []).map((m) => readMount(m, name === 'cache' ? 'cache' : 'secret', form));
  return {
    op: 'run',
    cache: mounts('cache'),
    network: atomsOf(fields.get('network'), 'a network name', form),
    secrets: mounts('secrets'),
    shell: asAtom(singleField(fields.get('shell')!, 'command', form), 'the command', form).value,
  };
}

function readCopy(args: readonly Sexp[], form: Sexp): Op {
  const fields = readFields(
    args,
    {
      from: { mandatory: false },
      src: { mandatory: true },
      dst: { mandatory: true },
      exclude: { mandatory: false },
    },
    form,
    'copy',
  );
  let from: CopySource = { kind: 'context' };
  const fromField = fields.get('from');
  if (fromField) {
    const source = singleField(fromField, 'source', form);
    if (source.kind === 'atom' && source.value === 'context') from = { kind: 'context' };
    else if (headName(source) === 'build' && (source as List).items.length === 2) {
      from = { kind: 'build', name: asAtom((source as List).items[1], 'the build name', form).value };
    } else fail(`a copy source is (from context) or (from (build NAME)), not ${show(fromField)}`, fromField);
  }
  return {
    op: 'copy',
    from,
    src: atomsOf(fields.get('src'), 'a source path', form),
    dst: asAtom(singleField(fields.get('dst')!, 'destination', form), 'the destination', form).value,
    exclude: atomsOf(fields.get('exclude'), 'an excluded name', form),
  };
}

/** A `copy (from (build NAME))` must name a build defined earlier, here or in an enclosing spec. */
function validateScopes(spec: Spec, outer: readonly string[]): void {
  const scope = [...outer];
  for (const child of spec.childBuilds) {
    validateScopes(child.spec, scope);
    scope.push(child.name);
  }
  for (const op of spec.ops) {
    if (op.op === 'copy' && op.from.kind === 'build' && !scope.includes(op.from.name)) {
      const known = scope.length ? ` (builds in scope: ${scope.map((s) => `"${s}"`).join(', ')})` : ' (no build is defined before it)';
      throw new SpecError(
        `unknown build "${op.from.name}" in (copy (from (build ${op.from.name})) ...)${didYouMean(op.from.name, scope)}${known}`,
        locationOf(op) ?? START,
      );
    }
  }
}
