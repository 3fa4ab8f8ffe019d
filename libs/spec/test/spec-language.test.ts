import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dockerfileOfSpec, parseSpec, printSpec, SpecError, type Spec } from '../src/index.js';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures', name), 'utf8');
// The repository's own example specs (examples/specs/README.md says what each covers).
const EXAMPLES = join(import.meta.dirname, '../../../examples/specs');

function rejection(text: string): SpecError {
  try {
    parseSpec(text);
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  throw new Error(`expected the spec to be rejected:\n${text}`);
}

describe('canonical printing (OBuilder layout)', () => {
  it('prints the SPEC-LANGUAGE round-trip spec byte for byte', () => {
    const text = fixture('roundtrip.spec');
    expect(printSpec(parseSpec(text))).toBe(text);
  });

  it('keeps a copy on one line only while it fits in 78 columns', () => {
    // The fields after "(copy " get the 71 columns left of the margin; like OCaml's
    // Format, the closing parenthesis is not counted.
    const fits = `(copy (src ${'a'.repeat(56)}) (dst /x))`;
    const tooLong = `(copy (src ${'a'.repeat(57)}) (dst /x))`;
    expect(printSpec(parseSpec(`((from x) ${fits})`))).toBe(`((from x)\n ${fits}\n)\n`);
    expect(printSpec(parseSpec(`((from x) ${tooLong})`))).toBe(`((from x)\n (copy (src ${'a'.repeat(57)})\n       (dst /x))\n)\n`);
  });

  it('prints a multi-line string as sexplib does, and reads it back', () => {
    const spec = parseSpec('((from x) (run (shell "a &&\n  b")))');
    const printed = printSpec(spec);
    expect(printed).toBe('((from x)\n (run (shell  "a &&\\\n             \\n  b"))\n)\n');
    expect(parseSpec(printed)).toEqual(spec);
  });

  it('drops (from context), empty lists and puts fields in canonical order', () => {
    const spec = parseSpec(`((from img)
      (copy (exclude) (dst /d/) (src a) (from context))
      (run (shell ls) (secrets) (network host) (cache (c (buildkit_options ((sharing locked))) (target /c)))))`);
    expect(printSpec(spec)).toBe(`((from img)
 (copy (src a) (dst /d/))
 (run (cache (c (target /c) (buildkit_options ((sharing locked)))))
      (network host)
      (shell ls))
)
`);
  });

  it('parses, prints and re-parses every example spec to the same AST', () => {
    const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.spec'));
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const f of files) {
      const spec = parseSpec(readFileSync(join(EXAMPLES, f), 'utf8'), f);
      const printed = printSpec(spec);
      expect(parseSpec(printed)).toEqual(spec);
      expect(printSpec(parseSpec(printed))).toBe(printed);
    }
  });

  it('keeps the Windows backslash that is not an escape', () => {
    // Written "mkdir C:\cairn" in the file: \c is no escape, so the backslash stays.
    const text = readFileSync(join(EXAMPLES, 'launcher.windows.spec'), 'utf8');
    expect(text).toContain('(run (shell "mkdir C:\\cairn"))');
    const spec = parseSpec(text);
    expect(spec.ops[0]).toEqual({ op: 'run', cache: [], network: [], secrets: [], shell: 'mkdir C:\\cairn' });
    expect(spec.childBuilds[0]?.spec.ops.some((op) => op.op === 'run' && op.network[0] === 'nat')).toBe(true);
  });
});

describe('Dockerfile export', () => {
  it('matches the SPEC-LANGUAGE example', () => {
    expect(dockerfileOfSpec(parseSpec(fixture('dockerfile-example.spec')))).toBe(fixture('dockerfile-example.Dockerfile'));
  });

  it('adds BuildKit mounts: secrets first, then caches, with the current uid', () => {
    const spec = parseSpec(`((from base) (user (uid 1000) (gid 1000))
      (run (cache (c (target /c) (buildkit_options ((sharing locked))))) (secrets (s (target /run/s))) (shell "make")))`);
    expect(dockerfileOfSpec(spec, { buildkit: true })).toBe(
      'FROM base\nUSER 1000:1000\nRUN --mount=type=secret,id=s,target=/run/s,uid=1000 --mount=type=cache,id=c,target=/c,uid=1000,sharing=locked make\n',
    );
  });

  it('writes child builds first, each followed by an empty line', () => {
    const spec = parseSpec(fixture('roundtrip.spec'));
    const out = dockerfileOfSpec(spec);
    expect(out.startsWith('FROM base as tools\nRUN make tools\n\nFROM base\n# A test comment\n')).toBe(true);
    expect(out).toContain('COPY --chown=1:2 --from=tools binary /usr/local/bin/\n'.replace('--chown=1:2 ', ''));
  });

  it('uses the backtick escape and no --chown for named users on Windows', () => {
    const spec = parseSpec(`((from mcr.microsoft.com/windows/server:ltsc2022)
      (user (name builder)) (env P "C:\\\\a \`b\\"")
      (run (shell "a\nb")) (copy (src x) (dst C:/y)))`);
    expect(dockerfileOfSpec(spec, { os: 'windows' })).toBe(
      '#escape=`\nFROM mcr.microsoft.com/windows/server:ltsc2022\nUSER builder\nENV P="C:\\a ``b`""\nRUN a `\n    b\nCOPY x C:/y\n',
    );
  });

  it('refuses BuildKit mounts for a named user, naming the op line', () => {
    const spec = parseSpec('((from w)\n (user (name u))\n (run (cache (c (target /c))) (shell x)))');
    expect(() => dockerfileOfSpec(spec, { buildkit: true })).toThrow(/^3:2: a BuildKit cache mount needs a numeric user/);
  });
});

describe('what OBuilder accepts is accepted', () => {
  const accepted: Record<string, string> = {
    'shell with no args': '((from a) (shell))',
    'fields in any order': '((from a) (run (shell x) (network host) (cache (c (target /t)))) (copy (dst d) (src s)))',
    'cache target before id fields': '((from a) (run (cache (c (buildkit_options ()) (target /t))) (shell x)))',
    'empty flat lists': '((from a) (run (network) (cache) (secrets) (shell x)) (copy (src) (dst d) (exclude)))',
    'explicit (from context)': '((from a) (copy (from context) (src s) (dst d)))',
    'windows user': '((from a) (user (name ContainerAdministrator)))',
    'OCaml integer syntax for ids': '((from a) (user (uid 0x3e8) (gid 1_000)))',
    'nested builds using an enclosing build':
      '((build a ((from x))) (build b ((build c ((from y) (copy (from (build a)) (src p) (dst q)))) (from z))) (from w) (copy (from (build b)) (src s) (dst d)))',
    'quoted op arguments': '((from "a b") (workdir "C:\\\\src") (env "" ""))',
    'all comment forms': '#| header |# ((from a) ; tail\n #;(run (shell gone)) (comment "kept"))',
  };
  it.each(Object.entries(accepted))('%s', (_name, text) => {
    const spec: Spec = parseSpec(text);
    expect(parseSpec(printSpec(spec))).toEqual(spec);
  });

  it('reads OCaml integers as numbers', () => {
    expect(parseSpec(accepted['OCaml integer syntax for ids']!).ops[0]).toEqual({ op: 'user', user: { kind: 'unix', uid: 1000, gid: 1000 } });
  });
});

describe('what OBuilder rejects is rejected, with line and column', () => {
  it.each([
    ['an atom as spec', 'from', 1, 1, 'expected the spec as a list'],
    ['no from', '((run (shell x)))', 1, 2, 'comes before (from IMAGE)'],
    ['empty spec', '()', 1, 1, 'has no (from IMAGE)'],
    ['second from', '((from a)\n (from b))', 2, 2, 'a second (from ...)'],
    ['build after from', '((from a)\n (build b ((from c))))', 2, 2, 'must come before (from ...)'],
    ['unknown op with hint', '((from a)\n  (rnu (shell x)))', 2, 4, 'unknown op "rnu" in (rnu (shell x)); did you mean "run"?'],
    ['capitalised op', '((from a) (Run (shell x)))', 1, 12, 'op names are lower case: "run"'],
    ['unknown run field', '((from a) (run (shel x)))', 1, 16, 'unknown field "shel" in run (run (shel x)); did you mean "shell"?'],
    ['duplicate field', '((from a) (run (shell x) (shell y)))', 1, 26, 'field "shell" is given twice'],
    ['missing shell', '((from a) (run (network host)))', 1, 11, 'missing its mandatory (shell ...) field'],
    ['missing dst', '((from a) (copy (src x)))', 1, 11, 'missing its mandatory (dst ...) field'],
    ['cache without target', '((from a) (run (cache (c)) (shell x)))', 1, 23, 'cache "c" is missing its mandatory (target ...)'],
    ['secret unknown field', '((from a) (run (secrets (s (target /t) (mode 1))) (shell x)))', 1, 40, 'unknown field "mode" in secret "s"'],
    ['gid before uid', '((from a) (user (gid 1) (uid 2)))', 1, 11, 'in that order'],
    ['uid not a number', '((from a) (user (uid x) (gid 2)))', 1, 22, 'the uid must be an integer, not "x"'],
    ['env with three atoms', '((from a) (env A B C))', 1, 11, '(env NAME VALUE) takes exactly two atoms'],
    ['env with a list', '((from a) (env A (B)))', 1, 18, 'expected the value but found (B)'],
    ['workdir without a path', '((from a) (workdir))', 1, 11, 'expected exactly one atom'],
    ['two shell commands', '((from a) (run (shell x y)))', 1, 16, '(shell ...) takes exactly one command'],
    ['bad copy source', '((from a) (copy (from image) (src x) (dst y)))', 1, 17, 'a copy source is (from context) or (from (build NAME))'],
    [
      'unknown build with hint',
      '((build tools ((from a)))\n (from b)\n (copy (from (build tool)) (src x) (dst y)))',
      3,
      2,
      'unknown build "tool" in (copy (from (build tool)) ...); did you mean "tools"?',
    ],
    [
      'build used before it is defined',
      '((build a ((from x) (copy (from (build b)) (src s) (dst d)))) (build b ((from y))) (from z))',
      1,
      21,
      'unknown build "b"',
    ],
    ['an empty op', '((from a) ())', 1, 11, 'an empty list () is not an op'],
    ['a list op name', '((from a) ((run) x))', 1, 12, 'an op starts with its name'],
    ['two specs in a file', '((from a))\n((from b))', 2, 1, 'exactly one'],
  ])('%s', (_name, text, line, column, words) => {
    const err = rejection(text);
    expect(err.message).toContain(words);
    expect(err.pos).toEqual({ line, column });
  });

  it('names the file when given one', () => {
    expect(() => parseSpec('((from a) (bad))', 'x.spec')).toThrow(/^x\.spec:1:12: unknown op "bad"/);
  });
});
