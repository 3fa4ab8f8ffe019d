import type { Sexp } from './sexp.js';

/**
 * Atom quoting and the machine form, byte-compatible with sexplib: step IDs are
 * SHA-256 digests of the machine form, so a single differing byte is a cache miss.
 */

const encoder = new TextEncoder();

/** sexplib's `must_escape`, over the UTF-8 bytes of the atom. */
export function mustQuote(value: string): boolean {
  if (value.length === 0) return true;
  const bytes = encoder.encode(value);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b <= 0x20 || b >= 0x7f) return true;
    // " ( ) ; \
    if (b === 0x22 || b === 0x28 || b === 0x29 || b === 0x3b || b === 0x5c) return true;
    // "#|" or "|#" anywhere would open or close a block comment when read back.
    if ((b === 0x23 && bytes[i + 1] === 0x7c) || (b === 0x7c && bytes[i + 1] === 0x23)) return true;
  }
  return false;
}

/** OCaml's `String.escaped` over UTF-8 bytes: printable ASCII kept, the rest escaped. */
export function escapeBytes(value: string): string {
  const bytes = encoder.encode(value);
  let out = '';
  for (const b of bytes) {
    switch (b) {
      case 0x22: out += '\\"'; break;
      case 0x5c: out += '\\\\'; break;
      case 0x0a: out += '\\n'; break;
      case 0x09: out += '\\t'; break;
      case 0x0d: out += '\\r'; break;
      case 0x08: out += '\\b'; break;
      default:
        out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\${String(b).padStart(3, '0')}`;
    }
  }
  return out;
}

/** An atom as written in either form when it fits on one line. */
export function quoteAtom(value: string): string {
  return mustQuote(value) ? `"${escapeBytes(value)}"` : value;
}

/**
 * Machine form: no whitespace except a single space between two consecutive atoms
 * that are both unquoted (anything else is self-delimiting).
 */
export function toMachine(sexp: Sexp): string {
  if (sexp.kind === 'atom') return quoteAtom(sexp.value);
  let out = '(';
  let prevBareAtom = false;
  for (const item of sexp.items) {
    const text = toMachine(item);
    const bare = item.kind === 'atom' && !mustQuote(item.value);
    if (prevBareAtom && bare) out += ' ';
    out += text;
    prevBareAtom = bare;
  }
  return out + ')';
}
