/**
 * Atom quoting and the machine form, byte-compatible with sexplib: step IDs are
 * SHA-256 digests of the machine form, so a single differing byte is a cache miss.
 */
import type { Sexp } from './sexp.js';

const encoder = new TextEncoder();

/**
 * Atoms that sexplib's `must_escape` quotes: empty, or holding a byte that is blank, a
 * control, not ASCII (every non-ASCII character encodes to bytes >= 0x80), one of
 * `"`, `(`, `)`, `;`, `\`, or `#|` or `|#`, which would open or close a block comment
 * when read back.
 */
const NOT_BARE = /[^\x21\x23-\x27\x2a-\x3a\x3c-\x5b\x5d-\x7e]/;

export function mustQuote(value: string): boolean {
  return value.length === 0 || NOT_BARE.test(value) || value.includes('#|') || value.includes('|#');
}

/** Characters that `escapeBytes` does not keep: all but printable ASCII, and `"` and `\`. */
const ESCAPED = /[^\x20\x21\x23-\x5b\x5d-\x7e]/gu;
const SHORT_ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r', '\b': '\\b' };

/**
 * OCaml's `String.escaped` over UTF-8 bytes: printable ASCII kept, the rest escaped.
 * Only the characters to escape are visited, so long plain runs cost one copy.
 */
export function escapeBytes(value: string): string {
  return value.replace(ESCAPED, (c) => {
    const short = SHORT_ESCAPES[c];
    if (short !== undefined) return short;
    let out = '';
    for (const b of encoder.encode(c)) out += `\\${String(b).padStart(3, '0')}`;
    return out;
  });
}

/** An atom as written in either form when it fits on one line. */
export function quoteAtom(value: string): string {
  return mustQuote(value) ? `"${escapeBytes(value)}"` : value;
}

/**
 * Machine form: no whitespace except a single space between two consecutive atoms
 * that are both unquoted (anything else is self-delimiting). Walks with its own stack:
 * hash inputs hold whole directory trees, which may nest deeper than the call stack allows.
 */
export function toMachine(sexp: Sexp): string {
  const out: string[] = [];
  const open: { items: readonly Sexp[]; next: number; prevBareAtom: boolean }[] = [];
  let item: Sexp | undefined = sexp;
  for (;;) {
    if (item !== undefined) {
      const parent = open[open.length - 1];
      if (item.kind === 'atom') {
        const bare = !mustQuote(item.value);
        if (parent?.prevBareAtom && bare) out.push(' ');
        if (parent) parent.prevBareAtom = bare;
        out.push(bare ? item.value : `"${escapeBytes(item.value)}"`);
      } else {
        if (parent) parent.prevBareAtom = false;
        out.push('(');
        open.push({ items: item.items, next: 0, prevBareAtom: false });
      }
    }
    const list = open[open.length - 1];
    if (list === undefined) return out.join('');
    if (list.next < list.items.length) item = list.items[list.next++];
    else {
      out.push(')');
      open.pop();
      item = undefined;
    }
  }
}
