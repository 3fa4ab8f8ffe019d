import { readdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// A fresh clone must be enough to run every test: no test or source file may read a
// path outside the repository (such as a folder that exists only beside the
// developers' own checkout).

const REPO = join(import.meta.dirname, '../../..');

/** Folders that are not the project's own sources (installed, built or cached). */
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', '.nx', 'coverage']);
const SOURCE = /\.(?:ts|mts|cts|js|mjs|cjs|sh)$/;

/**
 * Relative paths that climb out of their file's folder on purpose and are not read
 * from the repository's location; each with the reason.
 */
const ALLOWED: Record<string, { text: string; why: string }[]> = {
  'libs/builder/test/builder-config.test.ts': [
    { text: up(5) + '/etc/passwd', why: 'the target of a symlink made inside a temporary store, to test that climbing links are refused' },
  ],
};

function up(n: number): string {
  return Array.from({ length: n }, () => '..').join('/');
}

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP_DIRS.has(entry.name)) continue;
    const path = join(dir, entry.name);
    // The repository's own scratch folder (/tmp/ in .gitignore).
    if (entry.isDirectory() && path === join(REPO, 'tmp')) continue;
    if (entry.isDirectory()) yield* sourceFiles(path);
    else if (entry.isFile() && (SOURCE.test(entry.name) || isShellScript(path))) yield path;
  }
}

function isShellScript(path: string): boolean {
  if (/\.[^/]*$/.test(path.slice(path.lastIndexOf('/') + 1))) return false;
  return /^#!.*\b(?:ba|da|z)?sh\b/.test(readFileSync(path, 'utf8').slice(0, 100));
}

interface Escape {
  line: number;
  text: string;
  why: string;
}

/**
 * Where the text of the file at `file` (inside `repo`) refers to a path outside `repo`:
 * the developers' sibling "shared" folder; a relative path of parent segments that,
 * taken from the file's own folder, lands outside (written as one string, as separate
 * arguments of join/resolve, or after `$(dirname "$0")/` in a shell script); or a path
 * joined to the repository root that starts by going up.
 */
function escapesIn(text: string, file: string, repo: string): Escape[] {
  const found: Escape[] = [];
  const lineOf = (index: number) => text.slice(0, index).split('\n').length;
  const outside = (path: string) => {
    const rel = relative(repo, resolve(dirname(file), path));
    return rel === '..' || rel.startsWith('../') || isAbsolute(rel);
  };
  for (const m of text.matchAll(/\.\.(?:[/\\]|['"`]\s*,\s*['"`])shared\b/g)) {
    found.push({ line: lineOf(m.index), text: m[0], why: 'names the sibling "shared" folder of a developer checkout' });
  }
  // One string of parent segments (and what follows), also after a shell `$(...)/`.
  for (const m of text.matchAll(/(?:(?<![\w.$/\\-])|(?<=[)}]\/))\.\.(?:\/\.\.)*(?![\w.])(?:\/[\w.@+-]+)*\/?/g)) {
    if (outside(m[0])) found.push({ line: lineOf(m.index), text: m[0], why: 'climbs out of the repository from this file' });
  }
  // Parent segments given as separate arguments in a row.
  for (const m of text.matchAll(/(['"`])\.\.\1(?:\s*,\s*(['"`])\.\.\2)+/g)) {
    const path = m[0]
      .split(',')
      .map(() => '..')
      .join('/');
    if (outside(path)) found.push({ line: lineOf(m.index), text: m[0], why: 'climbs out of the repository from this file' });
  }
  // Anything above the repository root is outside it.
  for (const m of text.matchAll(/\b(?:REPO|ROOT|REPO_ROOT|repoRoot)\s*,\s*(['"`])\.\.(?:[/\\][^'"`]*)?\1/g)) {
    found.push({ line: lineOf(m.index), text: m[0], why: 'a path above the repository root' });
  }
  return found;
}

describe('the repository is self-contained', () => {
  it('finds the escapes it is meant to find, and nothing else', () => {
    // The cases are assembled at run time so that this file does not contain them.
    const file = join(REPO, 'libs/spec/test/x.test.ts');
    const SIBLING = 'shared';
    const args = (n: number) => Array.from({ length: n }, () => "'..'").join(', ');
    const texts = (src: string, where = file) => escapesIn(src, where, REPO).map((e) => e.text);
    expect(texts(`const E = join(import.meta.dirname, '${up(4)}/${SIBLING}/examples');`)).toEqual([`../${SIBLING}`, `${up(4)}/${SIBLING}/examples`]);
    expect(texts(`const E = join(REPO, '${up(1)}/${SIBLING}/examples');`)).toEqual([`${up(1)}/${SIBLING}`, `REPO, '${up(1)}/${SIBLING}/examples'`]);
    expect(texts(`const E = join(ROOT, '${up(1)}');`)).toEqual([`ROOT, '${up(1)}'`]);
    expect(texts(`const E = fileURLToPath(new URL('${up(4)}/other', import.meta.url));`)).toEqual([`${up(4)}/other`]);
    expect(texts(`const E = join(import.meta.dirname, ${args(4)}, 'x');`)).toEqual([args(4)]);
    expect(texts(`cd "$(dirname "$0")/${up(2)}"`, join(REPO, 'tools/x.sh'))).toEqual([up(2)]);
    // Inside the repository, and things that only look like a climb.
    expect(texts(`const R = join(import.meta.dirname, '${up(3)}'); import { a } from '${up(3)}/apps/cli/src/main.js';`)).toEqual([]);
    expect(texts(`const S = join(import.meta.dirname, ${args(3)}, 'examples');`)).toEqual([]);
    expect(texts(`const x = [...a, ...b]; const y = a${up(1)}b; const z = 'x/${up(1)}/y';`)).toEqual([]);
    expect(texts(`cd "$(dirname "$0")/${up(1)}"`, join(REPO, 'tools/x.sh'))).toEqual([]);
  });

  it('no test or source file refers to a path outside the repository', () => {
    const files = [...sourceFiles(REPO)];
    // The walk sees the sources, the tests, the tools and the CI script.
    for (const f of [
      'apps/cli/src/main.ts',
      'apps/cli/test/cli.test.ts',
      'libs/spec/test/spec-language.test.ts',
      'tools/bundle-cli.mjs',
      'tools/setup.sh',
      '.ci/run',
    ]) {
      expect(files.map((p) => relative(REPO, p))).toContain(f);
    }
    const offenders: string[] = [];
    for (const path of files) {
      const rel = relative(REPO, path);
      const allowed = ALLOWED[rel] ?? [];
      for (const e of escapesIn(readFileSync(path, 'utf8'), path, REPO)) {
        if (allowed.some((a) => a.text === e.text)) continue;
        offenders.push(`${rel}:${e.line}: ${e.text} (${e.why})`);
      }
    }
    expect(offenders, 'put what these read inside the repository (e.g. examples/specs/)').toEqual([]);
  });
});
