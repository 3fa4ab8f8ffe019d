import { describe, expect, it } from 'vitest';
import { readSexp, readSexps, SpecError, toMachine, type Sexp } from '../src/index.js';

const machine = (text: string) => readSexps(text).map(toMachine).join(' ');

function errorOf(text: string): SpecError {
  try {
    readSexps(text);
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be rejected`);
}

describe('S-expression reader', () => {
  it('skips line, nested block and datum comments', () => {
    expect(machine('(a ; comment\n b)')).toBe('(a b)');
    expect(machine('(a #| outer #| inner |# still |# b)')).toBe('(a b)');
    expect(machine('(a #;(hidden (list)) b #; c d)')).toBe('(a b d)');
    expect(machine('#| "|#" inside a string does not close |# x')).toBe('x');
  });

  it('reads OCaml escapes and keeps unknown ones', () => {
    const value = (text: string) => (readSexp(text) as Extract<Sexp, { kind: 'atom' }>).value;
    expect(value('"a\\"b\\\\c\\nd\\te\\bf\\rg"')).toBe('a"b\\c\nd\te\bf\rg');
    expect(value('"\\065\\x42"')).toBe('AB');
    expect(value('"C:\\obuilder"')).toBe('C:\\obuilder');
    expect(value('"\\999"')).toBe('\\999');
    expect(value('"caf\\195\\169"')).toBe('café');
    // A string that starts with U+FEFF keeps it (a decoder drops it as a byte-order mark by default).
    expect(value('"\\239\\187\\191x"')).toBe('\uFEFFx');
  });

  it('swallows a backslash-newline and the blanks after it', () => {
    const sexp = readSexp('"cd ~/x \\\n\t    && make"');
    expect(sexp).toMatchObject({ kind: 'atom', value: 'cd ~/x && make' });
    expect(readSexp('"a\\\r\n   b"')).toMatchObject({ value: 'ab' });
  });

  it('records 1-based line and column of every form', () => {
    const [top] = readSexps('\n  (a\n   (b c))');
    expect(top?.pos).toEqual({ line: 2, column: 3 });
    const inner = top?.kind === 'list' ? top.items[1] : undefined;
    expect(inner?.pos).toEqual({ line: 3, column: 4 });
  });

  it('prints the machine form with spaces only between unquoted atoms', () => {
    expect(machine('(env A "x y")')).toBe('(env A"x y")');
    expect(machine('((a) b () c)')).toBe('((a)b()c)');
    expect(machine('("" a "#|" "x|#" |a b|)')).toBe('(""a"#|""x|#"|a b|)');
    expect(machine('(a "é")')).toBe('(a"\\195\\169")');
  });

  it.each([
    ['(a b', 1, 1, '"(" is never closed'],
    ['(a)\n )', 2, 2, 'unmatched ")"'],
    ['(a "unterminated', 1, 4, 'string is never closed'],
    ['x\n  #| open', 2, 3, 'block comment'],
    ['(a #;)', 1, 4, '"#;" must be followed'],
    ['(a |# b)', 1, 4, '"|#" closes a block comment'],
    ['"\\255"', 1, 1, 'not valid UTF-8'],
  ])('rejects %j at %i:%i', (text, line, column, words) => {
    const err = errorOf(text);
    expect(err.pos).toEqual({ line, column });
    expect(err.message).toContain(words);
  });

  it('a spec file holds exactly one S-expression', () => {
    expect(() => readSexp('; nothing\n')).toThrow(/no S-expression/);
    expect(() => readSexp('(a)\n(b)')).toThrow(/^2:1: unexpected second S-expression/);
  });
});
