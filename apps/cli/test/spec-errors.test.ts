import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/main.js';

// Issue 11, items 5 and 6: every spec error names its file, and deep or huge specs end
// in one positioned line, not a stack trace or a wait of many seconds.

async function cairn(args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => void (out += s), err: (s) => void (err += s), readStdin: async () => stdin });
  return { code, out, err };
}

// Port 1 is never a NATS server: a submit that got as far as connecting would exit 3.
const NO_NATS = 'nats://127.0.0.1:1';

/** The spec-reading commands, each as the arguments that read `file`. */
const COMMANDS: [string, (file: string) => string[]][] = [
  ['build', (f) => ['build', '-f', f, '.']],
  ['plan', (f) => ['plan', '-f', f]],
  ['fmt', (f) => ['fmt', f]],
  ['dockerfile', (f) => ['dockerfile', '-f', f]],
  ['submit', (f) => ['submit', '--pool', 'linux-x86_64', '-f', f, '--nats', NO_NATS]],
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cairn-spec-errors-'));
});

async function specFile(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** `depth` child builds, each inside the one before. */
function nestedBuilds(depth: number): string {
  let text = '(from img)';
  for (let i = depth; i > 0; i--) text = `(build b${i} (${text})) (from img) (copy (from (build b${i})) (src /out) (dst /in${i}))`;
  return `(${text})`;
}

describe.each(COMMANDS)('cairn %s', (_name, argsFor) => {
  it('names the spec file in a parse error', async () => {
    const file = await specFile('unclosed.spec', '((from busybox)\n (run (shell "x")\n');
    expect(await cairn(argsFor(file))).toMatchObject({ code: 1, err: `cairn: ${file}:2:2: "(" is never closed\n` });
  });

  it('names stdin as <stdin>', async () => {
    expect(await cairn(argsFor('-'), '((from busybox)\n (frob)\n)')).toMatchObject({ code: 1, err: 'cairn: <stdin>:2:3: unknown op "frob" in (frob)\n' });
  });

  it('rejects 200,000 nested "(" in one positioned line', async () => {
    const file = await specFile('deep.spec', '('.repeat(200_000));
    expect(await cairn(argsFor(file))).toMatchObject({ code: 1, err: `cairn: ${file}:1:1001: nesting deeper than 1000 levels\n` });
  });

  it('rejects 3,000 closed nested lists in one positioned line', async () => {
    const file = await specFile('closed.spec', `((from a)\n ${'('.repeat(3_000)}${')'.repeat(3_000)})`);
    expect(await cairn(argsFor(file))).toMatchObject({ code: 1, err: `cairn: ${file}:2:1001: nesting deeper than 1000 levels\n` });
  });

  // Took 24 s before (a character at a time); about 1 s here on a busy 2-core machine.
  it('rejects a spec holding a 20 MB string within a bound', async () => {
    const file = await specFile('huge.spec', `((from a)\n (run (shell "${'a'.repeat(20 * 1024 * 1024)}") (frob)))`);
    const started = Date.now();
    const r = await cairn(argsFor(file));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`^cairn: ${file}:2:\\d+: unknown field "frob" in run \\(run \\(shell a+\\.\\.\\.`));
  });
});

describe('the deepest nesting the reader allows', () => {
  it.each([
    ['fmt', (f: string) => ['fmt', f]],
    ['plan', (f: string) => ['plan', '-f', f]],
    ['dockerfile', (f: string) => ['dockerfile', '-f', f]],
  ])('cairn %s handles 499 nested child builds', async (_name, argsFor) => {
    const file = await specFile('deepest.spec', nestedBuilds(499));
    const r = await cairn(argsFor(file));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('errors after parsing name the file too', () => {
  it('cairn dockerfile --buildkit with a Windows user and a cache mount', async () => {
    const file = await specFile('win.spec', '((from w)\n (user (name bob))\n (run (cache (c (target /c))) (shell x)))');
    expect(await cairn(['dockerfile', '--buildkit', '-f', file])).toMatchObject({
      code: 1,
      err: `cairn: ${file}:3:2: a BuildKit cache mount needs a numeric user, but the current user is "bob" (mount "c")\n`,
    });
  });

  it('--json carries the file', async () => {
    const file = await specFile('unclosed-json.spec', '((from busybox)\n (run (shell "x")\n');
    const r = await cairn(['plan', '-f', file, '--json']);
    expect(JSON.parse(r.err)).toEqual({ error: { message: `${file}:2:2: "(" is never closed`, reason: '"(" is never closed', line: 2, column: 2, file } });
  });
});
