import { describe, expect, it } from 'vitest';
import { dockerfileOfSpec, MAX_NESTING, parseSpec, printSpec, readSexp, readSexps, SpecError, toMachine, type Sexp, type Spec } from '../src/index.js';

// Issue 11, items 5 and 6: deep nesting ended in "RangeError: Maximum call stack size
// exceeded", and a 20 MB string took 16 s to reject.

function errorOf(f: () => unknown): SpecError {
  try {
    f();
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  throw new Error('expected a SpecError');
}

/** `depth` child builds, each inside the one before; the innermost spec holds `innermost`. */
function nestedBuilds(depth: number, innermost = '(from img)'): string {
  let text = innermost;
  for (let i = depth; i > 0; i--) text = `(build b${i} (${text})) (from img) (copy (from (build b${i})) (src /out) (dst /in${i}))`;
  return `(${text})`;
}

/** How deeply the lists of a read S-expression nest, without recursing. */
function depthOf(sexp: Sexp): number {
  let max = 0;
  const todo: [Sexp, number][] = [[sexp, 1]];
  for (let next = todo.pop(); next; next = todo.pop()) {
    const [s, d] = next;
    if (s.kind === 'list') {
      max = Math.max(max, d);
      for (const item of s.items) todo.push([item, d + 1]);
    }
  }
  return max;
}

describe('deep nesting', () => {
  // The position is that of the "(" that would open level 1001.
  it.each([
    ['200,000 unclosed "("', '('.repeat(200_000), '1:1001'],
    ['10,000 unclosed "("', '('.repeat(10_000), '1:1001'],
    ['3,000 closed lists', `${'('.repeat(3_000)}${')'.repeat(3_000)}`, '1:1001'],
    ['deep lists inside an op', `((from a)\n (run ${'('.repeat(5_000)}${')'.repeat(5_000)}))`, '2:1005'],
  ])('%s: a positioned SpecError, not a stack overflow', (_name, text, at) => {
    expect(MAX_NESTING).toBe(1000);
    expect(errorOf(() => parseSpec(text, 'deep.spec')).message).toBe(`deep.spec:${at}: nesting deeper than 1000 levels`);
  });

  it('reads lists exactly as deep as the limit, and their machine form', () => {
    const text = `${'('.repeat(MAX_NESTING)}x${')'.repeat(MAX_NESTING)}`;
    const sexp = readSexp(text);
    expect(depthOf(sexp)).toBe(MAX_NESTING);
    expect(toMachine(sexp)).toBe(text);
  });

  it('200,000 datum comments in a row are skipped without recursion', () => {
    const text = `(a ${'#;'.repeat(200_000)}${' x'.repeat(200_000)} b)`;
    expect(toMachine(readSexp(text))).toBe('(a b)');
    // The last "#;" still waiting is named, as when the reader recursed.
    expect(errorOf(() => readSexps(`(${'#;'.repeat(200_000)} x)`)).message).toBe('1:399998: "#;" must be followed by the S-expression it comments out');
  });

  it('prints the machine form of a list nested 100,000 deep (hash inputs are built, not read)', () => {
    let sexp: Sexp = { kind: 'atom', value: 'x' };
    for (let i = 0; i < 100_000; i++) sexp = { kind: 'list', items: [sexp] };
    expect(toMachine(sexp)).toBe(`${'('.repeat(100_000)}x${')'.repeat(100_000)}`);
  });

  it('quotes only the start of a deep form in an error', () => {
    const err = errorOf(() => parseSpec(`((from a)\n (${'('.repeat(998)}${')'.repeat(998)}))`));
    expect(err.message).toBe(`2:3: an op starts with its name, not ${'('.repeat(69)}...`);
  });

  // A child build is two levels (the (build ...) form and its spec), so the deepest
  // nesting the limit allows is (MAX_NESTING - 2) / 2 builds.
  const deepest = (MAX_NESTING - 2) / 2;

  it(`parses, prints and converts ${deepest} nested child builds, the most the limit allows`, () => {
    const text = nestedBuilds(deepest);
    const spec = parseSpec(text);
    let depth = 0;
    for (let s: Spec | undefined = spec; s?.childBuilds[0]; s = s.childBuilds[0].spec) depth++;
    expect(depth).toBe(deepest);
    const printed = printSpec(spec);
    expect(parseSpec(printed)).toEqual(spec);
    expect(printSpec(parseSpec(printed))).toBe(printed);
    expect(dockerfileOfSpec(spec).match(/^FROM /gm)).toHaveLength(deepest + 1);
    expect(errorOf(() => parseSpec(nestedBuilds(deepest + 1), 'deeper.spec')).message).toMatch(/^deeper\.spec:\d+:\d+: nesting deeper than 1000 levels$/);
  });

  it('names the innermost error of deeply nested builds by its own line and column', () => {
    const text = nestedBuilds(deepest, '(from img)\n (frob x)');
    expect(errorOf(() => parseSpec(text, 'f.spec')).message).toMatch(/^f\.spec:2:3: unknown op "frob" in \(frob x\)/);
  });
});

describe('huge atoms and strings are read in linear time', () => {
  const MB = 1024 * 1024;
  const big = 'a'.repeat(20 * MB);
  // The bounds only catch a hang or a quadratic read (16 s before the fix); on a busy
  // 2-core machine each of these took 0.1-0.7 s.
  const BOUND_MS = 5_000;

  function timed<T>(f: () => T): T {
    const started = performance.now();
    const result = f();
    expect(performance.now() - started).toBeLessThan(BOUND_MS);
    return result;
  }

  it('a 20 MB quoted string is read, and rejected as a spec', () => {
    const text = `"${big}"`;
    const sexp = timed(() => readSexp(text));
    expect(sexp.kind === 'atom' && sexp.value.length).toBe(big.length);
    const err = timed(() => errorOf(() => parseSpec(text, 'big.spec')));
    expect(err.message).toBe(`big.spec:1:1: expected the spec as a list ((from IMAGE) OP...) but found the atom ${'a'.repeat(69)}...`);
  });

  it('a 20 MB string that is never closed is rejected', () => {
    const err = timed(() => errorOf(() => parseSpec(`((from "${big}`)));
    expect(err.message).toBe("1:8: string is never closed with '\"'");
  });

  it('a 20 MB string with escapes and line continuations is read', () => {
    const line = 'x\\n\\t\\"\\\\\\195\\169\\x41 \\\n   ';
    const text = `"${line.repeat(Math.ceil((20 * MB) / line.length))}"`;
    const sexp = timed(() => readSexp(text));
    expect(sexp.kind === 'atom' && sexp.value.slice(0, 16)).toBe('x\n\t"\\éA x\n\t"\\éA ');
    expect(sexp.pos).toEqual({ line: 1, column: 1 });
  });

  it('a 20 MB atom is read, and rejected as a spec', () => {
    timed(() => expect(readSexp(big)).toMatchObject({ kind: 'atom', pos: { line: 1, column: 1 } }));
    const err = timed(() => errorOf(() => parseSpec(big)));
    expect(err.message).toMatch(/^1:1: expected the spec as a list .* but found the atom a+\.\.\.$/);
  });

  it('a 20 MB form that must be escaped is quoted by its start only in an error', () => {
    const err = timed(() => errorOf(() => parseSpec(`((from a) (frob ${'é'.repeat(10 * MB)}))`)));
    expect(err.message.startsWith(`1:12: unknown op "frob" in ${`(frob "${'\\195\\169'.repeat(9)}`.slice(0, 69)}...`)).toBe(true);
  });
});

describe('quoted strings', () => {
  it('keep characters outside the Basic Multilingual Plane', () => {
    // Read a UTF-16 unit at a time, each half of a surrogate pair became U+FFFD.
    expect(readSexp('"a 😀 b"')).toMatchObject({ kind: 'atom', value: 'a 😀 b' });
    expect(toMachine(readSexp('"😀"'))).toBe('"\\240\\159\\152\\128"');
  });
});
