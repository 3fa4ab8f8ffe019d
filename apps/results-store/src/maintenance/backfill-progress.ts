/**
 * Where the page backfill has got to, kept in a small file beside the pages it saves
 * (`<data>/pages/backfill.json`): a restarted store resumes its pass instead of
 * starting over, and a pass for another renderer or address starts from the newest.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Cursor } from '../queries/build-queries.js';

export interface BackfillPosition {
  /** The renderer and address the pass saves pages for (see pages/prerendered-pages.ts). */
  readonly renderer: string;
  readonly baseUrl: string;
  /** The last build the pass went through: it goes on with the builds that finished before it. */
  readonly older?: Cursor;
  readonly done: boolean;
}

export function backfillProgressPath(dataDir: string): string {
  return join(dataDir, 'pages', 'backfill.json');
}

export class BackfillProgress {
  constructor(private readonly file: string) {}

  /** The position last saved; undefined when there is none or it cannot be read (the pass then starts over, which is only slower). */
  async load(): Promise<BackfillPosition | undefined> {
    try {
      const p = JSON.parse(await readFile(this.file, 'utf8')) as Partial<BackfillPosition>;
      if (typeof p.renderer !== 'string' || typeof p.baseUrl !== 'string' || typeof p.done !== 'boolean') return undefined;
      const older = p.older && Number.isSafeInteger(p.older.at) && typeof p.older.id === 'string' ? { at: p.older.at, id: p.older.id } : undefined;
      return { renderer: p.renderer, baseUrl: p.baseUrl, done: p.done, ...(older ? { older } : {}) };
    } catch {
      return undefined;
    }
  }

  async save(position: BackfillPosition): Promise<void> {
    const tmp = `${this.file}.${randomBytes(6).toString('hex')}.tmp`;
    await mkdir(dirname(this.file), { recursive: true });
    try {
      await writeFile(tmp, JSON.stringify(position));
      await rename(tmp, this.file);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }
}
