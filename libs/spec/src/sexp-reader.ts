import type { Atom, Position, Sexp } from './sexp.js';
import { SpecError } from './spec-error.js';

/**
 * How deeply lists may nest. The reader keeps its own stack and would go on, but what
 * walks a spec afterwards (validation, printers, the plan, the engine) recurses once per
 * child build, and a child build is two levels: so about 500 nested builds, far beyond
 * any real spec, and far within the call stack (docs/decisions.md, "Reader limits").
 */
export const MAX_NESTING = 1000;

/**
 * A sexplib-compatible reader: `;` line comments, nestable `#| |#` block comments,
 * `#;` datum comments, OCaml string escapes and `\`-newline continuation. Every
 * failure is a SpecError with the position where the trouble starts.
 */
export function readSexps(text: string): Sexp[] {
  return new Reader(text).readAll();
}

/** Exactly one S-expression, as a spec file must hold. */
export function readSexp(text: string): Sexp {
  const all = readSexps(text);
  if (all.length === 0) throw new SpecError('the file holds no S-expression; a spec is one list like ((from IMAGE) OP...)', { line: 1, column: 1 });
  if (all.length > 1) {
    const extra = all[1]!;
    throw new SpecError('unexpected second S-expression after the spec; a spec file holds exactly one', extra.pos!);
  }
  return all[0]!;
}

const NL = 0x0a;
const QUOTE = 0x22;
const HASH = 0x23;
const LPAREN = 0x28;
const RPAREN = 0x29;
const SEMI = 0x3b;
const BACKSLASH = 0x5c;
const BAR = 0x7c;

const isBlank = (c: number) => c === 0x20 || c === 0x09 || c === NL || c === 0x0d || c === 0x0c;
const ATOM_END = /[ \t\n\r\f()";]/g;
/** What ends a run of plain text in a quoted string; a newline only moves the position on. */
const STRING_STOP = /["\\\n]/g;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const hexValue = (c: number) => (isDigit(c) ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1);

// ignoreBOM: a string's bytes are its own; U+FEFF at their start is text, not a marker to drop.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/** A list being read: the reader's own stack holds these, so nesting never deepens the call stack. */
interface Frame {
  readonly items: Sexp[];
  readonly pos: Position;
  /** `#;` seen in this list and still waiting for the datum they comment out, latest last. */
  readonly comments: Position[];
}

/** The bytes of a quoted string, grown by doubling: escapes may produce any byte, not only text. */
class Bytes {
  private buf = new Uint8Array(64);
  private length = 0;

  private room(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.length + extra));
    bigger.set(this.buf.subarray(0, this.length));
    this.buf = bigger;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.length++] = b;
  }

  text(s: string): void {
    if (s.length === 0) return;
    // A UTF-16 unit never takes more than three UTF-8 bytes (a lone surrogate becomes U+FFFD).
    this.room(s.length * 3);
    this.length += encoder.encodeInto(s, this.buf.subarray(this.length)).written;
  }

  decode(): string {
    return utf8.decode(this.buf.subarray(0, this.length));
  }
}

class Reader {
  private i = 0;
  private line = 1;
  private lineStart = 0;

  constructor(private readonly s: string) {}

  readAll(): Sexp[] {
    const top: Frame = { items: [], pos: { line: 1, column: 1 }, comments: [] };
    const open: Frame[] = [top];
    for (;;) {
      const frame = open[open.length - 1]!;
      this.skipBlank(frame);
      const atEnd = this.i >= this.s.length;
      const c = this.s.charCodeAt(this.i);
      if (atEnd || c === RPAREN) {
        const comment = frame.comments[frame.comments.length - 1];
        if (comment) throw new SpecError('"#;" must be followed by the S-expression it comments out', comment);
        if (atEnd) {
          if (open.length > 1) throw new SpecError('"(" is never closed', frame.pos);
          return top.items;
        }
        if (open.length === 1) throw new SpecError('unmatched ")"', this.pos());
        this.i++;
        open.pop();
        this.add(open, { kind: 'list', items: frame.items, pos: frame.pos });
      } else if (c === LPAREN) {
        // open.length counts the top level, so it is the depth the new list would have.
        if (open.length > MAX_NESTING) throw new SpecError(`nesting deeper than ${MAX_NESTING} levels`, this.pos());
        open.push({ items: [], pos: this.pos(), comments: [] });
        this.i++;
      } else {
        this.add(open, c === QUOTE ? this.readQuoted() : this.readAtom());
      }
    }
  }

  /** A finished datum goes into the innermost open list, unless a `#;` there takes it. */
  private add(open: Frame[], datum: Sexp): void {
    const frame = open[open.length - 1]!;
    if (frame.comments.length > 0) frame.comments.pop();
    else frame.items.push(datum);
  }

  private pos(): Position {
    return { line: this.line, column: this.i - this.lineStart + 1 };
  }

  private newlineAt(i: number): void {
    this.line++;
    this.lineStart = i + 1;
  }

  /** Skips white space and comments; a `#;` is noted in `frame` to swallow the next datum. */
  private skipBlank(frame: Frame): void {
    const s = this.s;
    for (;;) {
      const c = s.charCodeAt(this.i);
      const next = s.charCodeAt(this.i + 1);
      if (c === NL) {
        this.newlineAt(this.i);
        this.i++;
      } else if (isBlank(c)) this.i++;
      else if (c === SEMI) {
        const nl = s.indexOf('\n', this.i);
        this.i = nl < 0 ? s.length : nl;
      } else if (c === HASH && next === BAR) this.skipBlockComment();
      else if (c === HASH && next === SEMI) {
        frame.comments.push(this.pos());
        this.i += 2;
      } else if (c === BAR && next === HASH) {
        throw new SpecError('"|#" closes a block comment that was never opened with "#|"', this.pos());
      } else return;
    }
  }

  private skipBlockComment(): void {
    const s = this.s;
    const opens: Position[] = [];
    do {
      const c = s.charCodeAt(this.i);
      const next = s.charCodeAt(this.i + 1);
      if (c === HASH && next === BAR) {
        opens.push(this.pos());
        this.i += 2;
      } else if (c === BAR && next === HASH) {
        opens.pop();
        this.i += 2;
      } else if (c === QUOTE) {
        // A string inside a comment is still a string: "|#" in it does not end the comment.
        this.readQuoted();
      } else if (this.i >= s.length) {
        throw new SpecError('block comment "#|" is never closed with "|#"', opens[opens.length - 1]!);
      } else {
        if (c === NL) this.newlineAt(this.i);
        this.i++;
      }
    } while (opens.length > 0);
  }

  private readAtom(): Atom {
    const pos = this.pos();
    const start = this.i;
    ATOM_END.lastIndex = start;
    const end = ATOM_END.exec(this.s)?.index ?? this.s.length;
    this.i = end;
    return { kind: 'atom', value: this.s.slice(start, end), pos };
  }

  /**
   * Runs of plain text are copied whole between escapes; a character at a time made a
   * 20 MB string take 16 s.
   */
  private readQuoted(): Atom {
    const pos = this.pos();
    const s = this.s;
    const bytes = new Bytes();
    const unclosed = () => new SpecError("string is never closed with '\"'", pos);
    let i = this.i + 1;
    for (;;) {
      const runStart = i;
      let c: number;
      for (;;) {
        STRING_STOP.lastIndex = i;
        const stop = STRING_STOP.exec(s);
        if (stop === null) throw unclosed();
        i = stop.index;
        c = s.charCodeAt(i);
        if (c !== NL) break;
        this.newlineAt(i);
        i++;
      }
      bytes.text(s.slice(runStart, i));
      if (c === QUOTE) {
        i++;
        break;
      }
      const e = s.charCodeAt(i + 1);
      switch (e) {
        case 0x6e:
          bytes.byte(0x0a);
          i += 2;
          break; // n
        case 0x74:
          bytes.byte(0x09);
          i += 2;
          break; // t
        case 0x62:
          bytes.byte(0x08);
          i += 2;
          break; // b
        case 0x72:
          bytes.byte(0x0d);
          i += 2;
          break; // r
        case BACKSLASH:
        case QUOTE:
        case 0x27:
        case 0x20:
          bytes.byte(e);
          i += 2;
          break;
        case NL:
        case 0x0d: {
          if (e === 0x0d && s.charCodeAt(i + 2) !== NL) {
            // A lone CR is no line continuation: the backslash stays, the CR is read as text.
            bytes.byte(BACKSLASH);
            i += 1;
            break;
          }
          // Line continuation: drop the newline and the indentation that follows.
          i += e === 0x0d ? 2 : 1;
          this.newlineAt(i);
          i++;
          while (s.charCodeAt(i) === 0x20 || s.charCodeAt(i) === 0x09) i++;
          break;
        }
        default: {
          if (Number.isNaN(e)) throw unclosed();
          const d1 = s.charCodeAt(i + 2);
          const d2 = s.charCodeAt(i + 3);
          const decimal = isDigit(e) && isDigit(d1) && isDigit(d2) ? (e - 0x30) * 100 + (d1 - 0x30) * 10 + (d2 - 0x30) : -1;
          if (decimal >= 0 && decimal <= 255) {
            bytes.byte(decimal);
            i += 4;
          } else if (e === 0x78 && hexValue(d1) >= 0 && hexValue(d2) >= 0) {
            bytes.byte(hexValue(d1) * 16 + hexValue(d2));
            i += 4;
          } else {
            // sexplib keeps an unknown escape as it was written: "C:\obuilder" stays C:\obuilder.
            bytes.byte(BACKSLASH);
            i += 1;
          }
        }
      }
    }
    this.i = i;
    let value: string;
    try {
      value = bytes.decode();
    } catch {
      throw new SpecError('string escapes produce bytes that are not valid UTF-8', pos);
    }
    return { kind: 'atom', value, pos };
  }
}
