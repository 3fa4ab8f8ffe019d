/** .dockerignore: the patterns a spec's `exclude` can say. */
import { SpecError } from '../spec-error.js';
import { goTrim, trimEnd, trimStart } from './characters.js';
import { physicalLines } from './lines.js';

/**
 * A spec `exclude` is a base name matched at any depth, so the import takes only
 * patterns that say that: `NAME`, `NAME/`, `/NAME` or `**\/NAME` without wildcards.
 */
export function excludesOfDockerignore(text: string): string[] {
  const out: string[] = [];
  physicalLines(text).forEach((line, i) => {
    if (line.startsWith('#')) return;
    const pattern = goTrim(line);
    if (pattern === '') return;
    const name = excludeName(pattern, () => {
      throw new SpecError(
        `.dockerignore pattern "${pattern}" cannot be imported: a spec excludes a plain file or directory name at any depth (like node_modules or **/.git)`,
        { line: i + 1, column: line.indexOf(pattern) + 1 },
        '.dockerignore',
      );
    });
    if (!out.includes(name)) out.push(name);
  });
  return out;
}

export function excludeName(pattern: string, fail: () => never): string {
  if (pattern.startsWith('!')) fail();
  let p = trimEnd(pattern, (c) => c === '/');
  p = trimStart(p, (c) => c === '/');
  while (p.startsWith('./')) p = p.slice(2);
  if (p.startsWith('**/')) p = p.slice(3);
  if (p === '' || p === '.' || p === '..' || /[/*?[\\]/.test(p)) fail();
  return p;
}
