import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

/** For each folder of src/, the folders it must not import from (results-store.module.ts says why). */
const CONTROLLERS = ['api', 'http'];
const RENDERING = ['pages', 'view'];
const BENEATH = ['actions', 'rollups', 'live', 'queries', 'auth', 'ingest', 'ops', 'hooks', 'blobs', 'db'];
const FORBIDDEN: Record<string, readonly string[]> = {
  http: ['api'],
  pages: [...CONTROLLERS],
  view: [...CONTROLLERS, 'pages', ...BENEATH, 'maintenance'],
  maintenance: [...CONTROLLERS],
  ...Object.fromEntries(BENEATH.map((folder) => [folder, [...CONTROLLERS, ...RENDERING, 'maintenance']])),
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The top folder under src/ of a file ('' for the files at the top). */
const folderOf = (file: string) => (relative(SRC, file).includes('/') ? relative(SRC, file).split('/')[0]! : '');

describe('the results-store source layers', () => {
  it('point one way: controllers over pages over view, the data beneath them all', () => {
    const wrong: string[] = [];
    for (const file of sources(SRC)) {
      const from = folderOf(file);
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
        const to = folderOf(resolve(dirname(file), spec!));
        if (FORBIDDEN[from]?.includes(to)) wrong.push(`${relative(SRC, file)} imports ${spec}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('have no two folders that import each other', () => {
    const edges = new Set<string>();
    for (const file of sources(SRC)) {
      const from = folderOf(file);
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
        const to = folderOf(resolve(dirname(file), spec!));
        if (from !== '' && to !== '' && to !== from) edges.add(`${from} -> ${to}`);
      }
    }
    const both = [...edges].filter((edge) => edges.has(edge.split(' -> ').reverse().join(' -> ')));
    expect(both).toEqual([]);
  });
});
