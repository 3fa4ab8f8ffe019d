/**
 * The pieces every store's shared caches are made of: a view that can be released once,
 * and generations named `<n>-<random>` whose rename is the commit's generation check.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { errorCode } from './errno.js';
import type { CacheView } from './store.js';

/** A cache view whose release runs once; a second release is a bug in the caller. */
export class OnceReleasedCacheView implements CacheView {
  private released = false;

  constructor(
    readonly path: string,
    private readonly onRelease: (commit: boolean) => Promise<void>,
  ) {}

  async release(commit: boolean): Promise<void> {
    if (this.released) throw new Error(`cache view ${this.path} was already released`);
    this.released = true;
    await this.onRelease(commit);
  }
}

export interface Generation {
  readonly name: string;
  readonly generation: number;
}

const GENERATION = /^(\d+)-([0-9a-f]+)$/;

export function generationName(generation: number): string {
  return `${generation}-${randomBytes(6).toString('hex')}`;
}

export async function generations(dir: string): Promise<Generation[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return [];
    throw e;
  }
  return names.flatMap((name) => {
    const m = GENERATION.exec(name);
    return m ? [{ name, generation: Number(m[1]) }] : [];
  });
}

/** The newest generation; names break ties so that every process picks the same one. */
export async function currentGeneration(dir: string): Promise<Generation | undefined> {
  let current: Generation | undefined;
  for (const g of await generations(dir)) {
    if (!current || g.generation > current.generation || (g.generation === current.generation && g.name > current.name)) current = g;
  }
  return current;
}
