import type { Mount, Op, Spec, User } from './ast.js';
import { atom, list, type Sexp } from './sexp.js';
import { escapeBytes, mustQuote } from './sexp-printer.js';

/**
 * Canonical printing, laid out exactly as OBuilder's printer does (OCaml Format with a
 * 78-column margin): ops one per line, `run` fields stacked, `copy` on one line when it
 * fits, child builds indented under their name, the final `)` on its own line.
 */
export function printSpec(spec: Spec): string {
  return `${printTop(sexpOfSpec(spec), 0)}\n`;
}

/** One op, as it appears in a printed spec and in build log headings. */
export function printOp(op: Op): string {
  const out: string[] = [];
  layoutOp(out, sexpOfOp(op), 0);
  return out.join('');
}

const MARGIN = 78;

// ---- AST -> canonical S-expression ----------------------------------------------

export function sexpOfSpec(spec: Spec): Sexp {
  return list(
    ...spec.childBuilds.map((c) => list(atom('build'), atom(c.name), sexpOfSpec(c.spec))),
    list(atom('from'), atom(spec.from)),
    ...spec.ops.map(sexpOfOp),
  );
}

export function sexpOfUser(user: User): Sexp {
  return user.kind === 'unix'
    ? list(list(atom('uid'), atom(String(user.uid))), list(atom('gid'), atom(String(user.gid))))
    : list(list(atom('name'), atom(user.name)));
}

function sexpOfMount(m: Mount): Sexp {
  const fields: Sexp[] = [atom(m.id), list(atom('target'), atom(m.target))];
  if (m.buildkitOptions.length) {
    fields.push(list(atom('buildkit_options'), list(...m.buildkitOptions.map(([k, v]) => list(atom(k), atom(v))))));
  }
  return list(...fields);
}

/** `(name a b c)`, or nothing when the list is empty (OBuilder's [@sexp.list] fields). */
function flatField(name: string, items: Sexp[]): Sexp[] {
  return items.length ? [list(atom(name), ...items)] : [];
}

export function sexpOfOp(op: Op): Sexp {
  switch (op.op) {
    case 'comment':
      return list(atom('comment'), atom(op.text));
    case 'workdir':
      return list(atom('workdir'), atom(op.path));
    case 'shell':
      return list(atom('shell'), ...op.args.map(atom));
    case 'env':
      return list(atom('env'), atom(op.name), atom(op.value));
    case 'user': {
      const fields = sexpOfUser(op.user);
      return list(atom('user'), ...(fields.kind === 'list' ? fields.items : []));
    }
    case 'run':
      return list(
        atom('run'),
        ...flatField('cache', op.cache.map(sexpOfMount)),
        ...flatField('network', op.network.map(atom)),
        ...flatField('secrets', op.secrets.map(sexpOfMount)),
        list(atom('shell'), atom(op.shell)),
      );
    case 'copy':
      return list(
        atom('copy'),
        ...(op.from.kind === 'build' ? [list(atom('from'), list(atom('build'), atom(op.from.name)))] : []),
        list(atom('src'), ...op.src.map(atom)),
        list(atom('dst'), atom(op.dst)),
        ...flatField('exclude', op.exclude.map(atom)),
      );
  }
}

// ---- layout ---------------------------------------------------------------------

/**
 * A piece of output that knows its Format "size": the characters it occupies when
 * laid out flat, which is what decides whether a `copy` fits on its line.
 */
interface Laid {
  text: string;
  size: number;
}

const pad = (n: number) => ' '.repeat(n);

/**
 * An atom as sexplib's `pp_hum` prints it starting at column `col`. A string with
 * inner newlines is printed over several lines, each continued with `\` and lined up
 * under a leading space, which reads back to the same string.
 */
function layoutAtom(value: string, col: number): Laid {
  return layoutAtomAs(value, col, mustQuote(value), isMultiLine(value), true);
}

/** Whether a quoted atom is printed over several lines: a single trailing newline is not enough. */
function isMultiLine(value: string): boolean {
  const nl = value.indexOf('\n');
  return nl >= 0 && nl !== value.length - 1;
}

/**
 * `value`, which is the whole atom or only its start (`whole` false: no closing quote),
 * laid out as the whole atom would be: quoting and line breaking are the whole atom's.
 */
function layoutAtomAs(value: string, col: number, quoted: boolean, multiLine: boolean, whole: boolean): Laid {
  if (!quoted) return { text: value, size: value.length };
  const close = whole ? '"' : '';
  if (!multiLine) {
    const text = `"${escapeBytes(value)}${close}`;
    return { text, size: text.length };
  }
  let text = ' "';
  let size = 2;
  value.split('\n').forEach((line, i) => {
    const escaped = escapeBytes(line);
    if (i > 0) {
      text += `\\\n${pad(col)}\\n`;
      size += 3;
    }
    text += escaped;
    size += escaped.length;
  });
  return { text: `${text}${close}`, size: size + close.length };
}

/** A whole S-expression on one line (Fmt.hbox of pp_hum), starting at column `col`. */
function layoutFlat(sexp: Sexp, col: number): Laid {
  if (sexp.kind === 'atom') return layoutAtom(sexp.value, col);
  let text = '(';
  let size = 1;
  let column = col + 1;
  sexp.items.forEach((item, i) => {
    if (i > 0) {
      text += ' ';
      size += 1;
      column += 1;
    }
    const laid = layoutFlat(item, column);
    text += laid.text;
    size += laid.size;
    column = endColumn(laid.text, column);
  });
  return { text: `${text})`, size: size + 1 };
}

function endColumn(text: string, startCol: number): number {
  const nl = text.lastIndexOf('\n');
  return nl < 0 ? startCol + text.length : text.length - nl - 1;
}

/** A single S-expression on one line, for error messages and log headings. */
export function oneLine(sexp: Sexp): string {
  return layoutFlat(sexp, 0).text;
}

/**
 * The start of `oneLine(sexp)`: all of it, or more than `max` characters of it, laid out
 * without recursion and without the rest, so that an error quoting a form stays quick
 * and bounded however large or deep the form is.
 */
export function oneLineStart(sexp: Sexp, max: number): string {
  let text = '';
  let column = 0;
  const open: { items: readonly Sexp[]; next: number }[] = [];
  let item: Sexp | undefined = sexp;
  for (;;) {
    if (text.length > max) return text;
    if (item?.kind === 'atom') {
      const whole = item.value.length <= max;
      const laid = layoutAtomAs(whole ? item.value : startOf(item.value, max + 1), column, mustQuote(item.value), isMultiLine(item.value), whole);
      text += laid.text;
      column = endColumn(laid.text, column);
    } else if (item?.kind === 'list') {
      text += '(';
      column += 1;
      open.push({ items: item.items, next: 0 });
    }
    const list = open[open.length - 1];
    if (list === undefined) return text;
    if (list.next < list.items.length) {
      if (list.next > 0) {
        text += ' ';
        column += 1;
      }
      item = list.items[list.next++];
    } else {
      text += ')';
      column += 1;
      open.pop();
      item = undefined;
    }
  }
}

/** The first `n` UTF-16 units of `value`, one fewer rather than half a surrogate pair. */
function startOf(value: string, n: number): string {
  const code = value.charCodeAt(n - 1);
  return value.slice(0, code >= 0xd800 && code <= 0xdbff ? n - 1 : n);
}

/**
 * `(` then the items stacked at `col + 1`, then `)` alone on the next line at `col`.
 * Pieces go to one array joined at the end: returning each child build's text to be
 * pasted into its parent's copied it once per level, quadratic in the nesting.
 */
function printTop(sexp: Sexp, col: number): string {
  const out = ['('];
  stack(out, sexp.kind === 'list' ? sexp.items : [], col + 1);
  out.push(`\n${pad(col)})`);
  return out.join('');
}

function stack(out: string[], items: readonly Sexp[], col: number): void {
  items.forEach((item, i) => {
    if (i > 0) out.push(`\n${pad(col)}`);
    layoutOp(out, item, col);
  });
}

function layoutOp(out: string[], sexp: Sexp, col: number): void {
  if (sexp.kind !== 'list' || sexp.items[0]?.kind !== 'atom') {
    out.push(layoutFlat(sexp, col).text);
    return;
  }
  const [head, ...args] = sexp.items;
  switch (head.value) {
    case 'build': {
      const [name, child] = args;
      if (args.length === 2 && name?.kind === 'atom' && child?.kind === 'list') {
        const boxCol = col + '(build '.length;
        out.push(`(build ${layoutAtom(name.value, boxCol).text}\n${pad(boxCol)}(`);
        stack(out, child.items, boxCol + 1);
        out.push('))');
        return;
      }
      break;
    }
    case 'copy': {
      const boxCol = col + '(copy '.length;
      const flat = joinFlat(args, boxCol, ' ');
      if (flat.size <= MARGIN - boxCol) out.push(`(copy ${flat.text})`);
      else out.push(`(copy ${args.map((a) => layoutFlat(a, boxCol).text).join(`\n${pad(boxCol)}`)})`);
      return;
    }
    case 'run': {
      const boxCol = col + '(run '.length;
      out.push(`(run ${args.map((a) => layoutFlat(a, boxCol).text).join(`\n${pad(boxCol)}`)})`);
      return;
    }
  }
  out.push(layoutFlat(sexp, col).text);
}

function joinFlat(items: readonly Sexp[], col: number, sep: string): Laid {
  let text = '';
  let size = 0;
  let column = col;
  items.forEach((item, i) => {
    if (i > 0) {
      text += sep;
      size += sep.length;
      column += sep.length;
    }
    const laid = layoutFlat(item, column);
    text += laid.text;
    size += laid.size;
    column = endColumn(laid.text, column);
  });
  return { text, size };
}
