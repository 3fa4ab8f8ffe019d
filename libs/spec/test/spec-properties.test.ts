import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSpec, printSpec, SpecError, type Mount, type Op, type Spec } from '../src/index.js';

// Strings that stress the quoting rules as well as arbitrary Unicode.
const tricky = fc.constantFrom('', ' ', '"', '\\', '(', ')', ';', '#|', '|#', '#;', '\n', '\t', 'a\nb', 'é', '\u0000', '\u007f', 'x y', 'C:\\src');
const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 2, arbitrary: fc.stringMatching(/^[a-z0-9_./-]{1,10}$/) },
  { weight: 2, arbitrary: tricky },
);
const list = <T>(arb: fc.Arbitrary<T>) => fc.array(arb, { maxLength: 3 });

const mount: fc.Arbitrary<Mount> = fc.record({
  id: text,
  target: text,
  buildkitOptions: list(fc.tuple(text, text)),
});

const op = (buildNames: readonly string[]): fc.Arbitrary<Op> =>
  fc.oneof(
    fc.record({ op: fc.constant('comment' as const), text }),
    fc.record({ op: fc.constant('workdir' as const), path: text }),
    fc.record({ op: fc.constant('shell' as const), args: list(text) }),
    fc.record({ op: fc.constant('env' as const), name: text, value: text }),
    fc.record({
      op: fc.constant('user' as const),
      user: fc.oneof(
        fc.record({ kind: fc.constant('unix' as const), uid: fc.integer({ min: -1, max: 2 ** 31 }), gid: fc.nat() }),
        fc.record({ kind: fc.constant('windows' as const), name: text }),
      ),
    }),
    fc.record({ op: fc.constant('run' as const), cache: list(mount), network: list(text), secrets: list(mount), shell: text }),
    fc.record({
      op: fc.constant('copy' as const),
      from: buildNames.length
        ? fc.oneof(
            fc.constant({ kind: 'context' as const }),
            fc.constantFrom(...buildNames).map((name) => ({ kind: 'build' as const, name })),
          )
        : fc.constant({ kind: 'context' as const }),
      src: list(text),
      dst: text,
      exclude: list(text),
    }),
  );

// Child builds nest at most two levels deep, as real specs do, which keeps cases small.
const specAt = (depth: number): fc.Arbitrary<Spec> =>
  (depth === 0 ? fc.constant([]) : fc.array(fc.record({ name: text, spec: specAt(depth - 1) }), { maxLength: 2 })).chain((childBuilds) =>
    fc.record({
      childBuilds: fc.constant(childBuilds),
      from: text,
      ops: fc.array(op(childBuilds.map((c) => c.name)), { maxLength: 6 }),
    }),
  );
const spec = specAt(2);

describe('printing and reading are inverse', () => {
  it('parse(print(spec)) equals spec', () => {
    fc.assert(
      fc.property(spec, (s) => {
        expect(parseSpec(printSpec(s))).toEqual(s);
      }),
      { numRuns: 2000 },
    );
  });

  it('printing is idempotent', () => {
    fc.assert(
      fc.property(spec, (s) => {
        const once = printSpec(s);
        expect(printSpec(parseSpec(once))).toBe(once);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('fuzzing the reader', () => {
  // Inputs built from the language's own tokens reach deep into the parser; mutated
  // valid specs reach the validation rules.
  const token = fc.constantFrom(
    '(',
    ')',
    '"',
    '\\',
    ';',
    '#|',
    '|#',
    '#;',
    ' ',
    '\n',
    'from',
    'run',
    'copy',
    'shell',
    'build',
    'src',
    'dst',
    'user',
    'uid',
    'gid',
    'env',
    'cache',
    'target',
    'secrets',
    'network',
    'context',
    'x',
    '0',
    '\\n',
    '\\x4',
    '\\12',
  );
  const soup = fc.array(token, { maxLength: 40 }).map((t) => t.join(''));
  const mutated = fc.tuple(spec, fc.array(fc.tuple(fc.nat(), fc.nat(3), fc.string({ maxLength: 3 })), { minLength: 1, maxLength: 4 })).map(([s, edits]) => {
    let out = printSpec(s);
    for (const [at, del, ins] of edits) {
      const i = at % (out.length + 1);
      out = out.slice(0, i) + ins + out.slice(i + del);
    }
    return out;
  });
  const anything = fc.string({ unit: 'binary', maxLength: 60 });

  it('never throws anything but a positioned SpecError (100,000 inputs)', () => {
    let rejected = 0;
    fc.assert(
      fc.property(fc.oneof(soup, mutated, anything), (input) => {
        try {
          parseSpec(input);
        } catch (e) {
          if (!(e instanceof SpecError)) throw e;
          expect(e.pos.line).toBeGreaterThanOrEqual(1);
          expect(e.pos.column).toBeGreaterThanOrEqual(1);
          rejected++;
        }
      }),
      { numRuns: 100_000 },
    );
    // The generators must exercise the error paths, not only the happy one.
    expect(rejected).toBeGreaterThan(10_000);
  });
});
