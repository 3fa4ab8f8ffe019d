import type { Atom, List, Position, Sexp } from './sexp.js';
import { SpecError } from './spec-error.js';

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

const WHITESPACE = new Set([' ', '\t', '\n', '\r', '\f']);
const ATOM_END = new Set([' ', '\t', '\n', '\r', '\f', '(', ')', '"', ';']);
const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

class Reader {
  private i = 0;
  private line = 1;
  private lineStart = 0;

  constructor(private readonly s: string) {}

  readAll(): Sexp[] {
    const out: Sexp[] = [];
    for (;;) {
      this.skipBlank();
      if (this.i >= this.s.length) return out;
      if (this.s[this.i] === ')') throw new SpecError('unmatched ")"', this.pos());
      out.push(this.readDatum());
    }
  }

  private pos(): Position {
    return { line: this.line, column: this.i - this.lineStart + 1 };
  }

  private advance(): string {
    const c = this.s[this.i++]!;
    if (c === '\n') {
      this.line++;
      this.lineStart = this.i;
    }
    return c;
  }

  private startsWith(token: string): boolean {
    return this.s.startsWith(token, this.i);
  }

  /** Skips white space and every kind of comment, including `#;` datum comments. */
  private skipBlank(): void {
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) return;
      if (WHITESPACE.has(c)) this.advance();
      else if (c === ';') {
        while (this.i < this.s.length && this.s[this.i] !== '\n') this.advance();
      } else if (this.startsWith('#|')) this.skipBlockComment();
      else if (this.startsWith('#;')) {
        const start = this.pos();
        this.advance();
        this.advance();
        this.skipBlank();
        if (this.i >= this.s.length || this.s[this.i] === ')') {
          throw new SpecError('"#;" must be followed by the S-expression it comments out', start);
        }
        this.readDatum();
      } else if (this.startsWith('|#')) {
        throw new SpecError('"|#" closes a block comment that was never opened with "#|"', this.pos());
      } else return;
    }
  }

  private skipBlockComment(): void {
    const opens: Position[] = [];
    do {
      if (this.startsWith('#|')) {
        opens.push(this.pos());
        this.advance();
        this.advance();
      } else if (this.startsWith('|#')) {
        opens.pop();
        this.advance();
        this.advance();
      } else if (this.s[this.i] === '"') {
        // A string inside a comment is still a string: "|#" in it does not end the comment.
        this.readQuoted();
      } else if (this.i >= this.s.length) {
        throw new SpecError('block comment "#|" is never closed with "|#"', opens[opens.length - 1]!);
      } else this.advance();
    } while (opens.length > 0);
  }

  private readDatum(): Sexp {
    const c = this.s[this.i];
    if (c === '(') return this.readList();
    if (c === '"') return this.readQuoted();
    return this.readAtom();
  }

  private readList(): List {
    const pos = this.pos();
    this.advance();
    const items: Sexp[] = [];
    for (;;) {
      this.skipBlank();
      if (this.i >= this.s.length) throw new SpecError('"(" is never closed', pos);
      if (this.s[this.i] === ')') {
        this.advance();
        return { kind: 'list', items, pos };
      }
      items.push(this.readDatum());
    }
  }

  private readAtom(): Atom {
    const pos = this.pos();
    const start = this.i;
    while (this.i < this.s.length && !ATOM_END.has(this.s[this.i]!)) this.advance();
    return { kind: 'atom', value: this.s.slice(start, this.i), pos };
  }

  private readQuoted(): Atom {
    const pos = this.pos();
    this.advance();
    const bytes: number[] = [];
    const pushText = (text: string) => {
      for (const b of encoder.encode(text)) bytes.push(b);
    };
    for (;;) {
      if (this.i >= this.s.length) throw new SpecError('string is never closed with \'"\'', pos);
      const c = this.advance();
      if (c === '"') break;
      if (c !== '\\') {
        pushText(c);
        continue;
      }
      const e = this.s[this.i];
      switch (e) {
        case undefined:
          throw new SpecError('string is never closed with \'"\'', pos);
        case 'n': this.advance(); bytes.push(0x0a); break;
        case 't': this.advance(); bytes.push(0x09); break;
        case 'b': this.advance(); bytes.push(0x08); break;
        case 'r': this.advance(); bytes.push(0x0d); break;
        case '\\': case '"': case '\'': case ' ':
          this.advance();
          pushText(e);
          break;
        case '\n':
        case '\r': {
          // Line continuation: drop the newline and the indentation that follows.
          if (e === '\r' && this.s[this.i + 1] !== '\n') {
            bytes.push(0x5c);
            break;
          }
          if (e === '\r') this.advance();
          this.advance();
          while (this.s[this.i] === ' ' || this.s[this.i] === '\t') this.advance();
          break;
        }
        default: {
          const dec = /^[0-9]{3}/.exec(this.s.slice(this.i, this.i + 3));
          const hex = /^x[0-9a-fA-F]{2}/.exec(this.s.slice(this.i, this.i + 3));
          if (dec && Number(dec[0]) <= 255) {
            bytes.push(Number(dec[0]));
            this.advance(); this.advance(); this.advance();
          } else if (hex) {
            bytes.push(parseInt(hex[0].slice(1), 16));
            this.advance(); this.advance(); this.advance();
          } else {
            // sexplib keeps an unknown escape as it was written: "C:\obuilder" stays C:\obuilder.
            bytes.push(0x5c);
          }
        }
      }
    }
    let value: string;
    try {
      value = utf8.decode(new Uint8Array(bytes));
    } catch {
      throw new SpecError('string escapes produce bytes that are not valid UTF-8', pos);
    }
    return { kind: 'atom', value, pos };
  }
}
