/**
 * A build context's file digests, kept between runs in one file per context (named after
 * the context's real path) so that `cairn plan`, `cairn build` and `cairn submit` read
 * only the files that changed. Open it before walking the context, pass it to
 * generateManifest (or planSpec, or the engine), then `save` it.
 *
 * A digest is trusted while the file's inode, size, mtime and ctime (to the nanosecond)
 * are those it was read with. That misses one case, as git's index does: a file
 * rewritten with the same size within the same timestamp tick, right after it was read.
 * So, like git's "racy" entries, a file modified less than RACY_MS before this run began
 * is read and not kept: by the time it could be trusted, any later write would have
 * moved its mtime. Its old entry, if any, stays as it was (it no longer matches the
 * file's ctime, so it vouches for nothing) and spares rewriting the whole cache for a
 * file just edited: the next run after it settles reads it once more and keeps it.
 * A cache file that cannot be parsed is ignored and rewritten; writers write a temporary
 * file and rename it, so concurrent runs each leave a whole cache.
 */
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { mkdir, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { FileDigestCache } from './manifest.js';
import { sha256Hex } from './step-id.js';

const VERSION = 1;
// Timestamp granularity is a jiffy on Linux, up to 2 s on FAT; beyond both.
const RACY_MS = 2000;

/**
 * [path, sha256, inode, size, mtime, ctime], times in milliseconds. A double holds them to
 * a quarter of a microsecond, far below the racy margin that makes their precision moot.
 */
type Entry = readonly [string, string, number, number, number, number];

interface CacheFile {
  readonly version: number;
  readonly root: string;
  readonly entries: readonly Entry[];
}

const entryOf = (path: string, st: Stats, sha256: string): Entry => [path, sha256, st.ino, st.size, st.mtimeMs, st.ctimeMs];

export class ContextHashCache implements FileDigestCache {
  /** What this run found still valid, and what it read: what `save` writes. */
  private readonly kept: Entry[] = [];
  private readonly added: Entry[] = [];
  /** Files whose digest came from the cache, and files read, in this run. */
  hits = 0;
  reads = 0;

  private constructor(
    /** The cache file. */
    readonly file: string,
    private readonly root: string,
    private readonly previous: ReadonlyMap<string, Entry>,
    private readonly racyFrom: number,
  ) {}

  /** The cache of `contextDir`, kept in `cacheDir`; empty when there is none or it is unreadable. */
  static async open(contextDir: string, cacheDir: string): Promise<ContextHashCache> {
    const racyFrom = Date.now() - RACY_MS;
    const root = await realpath(contextDir).catch(() => resolve(contextDir));
    const file = join(cacheDir, `${sha256Hex(root).slice(0, 32)}.json`);
    return new ContextHashCache(file, root, await load(file, root), racyFrom);
  }

  get(path: string, st: Stats): string | undefined {
    const e = this.previous.get(path);
    if (e === undefined || e[2] !== st.ino || e[3] !== st.size || e[4] !== st.mtimeMs || e[5] !== st.ctimeMs) return undefined;
    this.hits++;
    this.kept.push(e);
    return e[1];
  }

  set(path: string, st: Stats, sha256: string): void {
    this.reads++;
    if (st.mtimeMs >= this.racyFrom) {
      // Only a file `get` did not vouch for is read: an old entry here is out of date.
      const old = this.previous.get(path);
      if (old !== undefined) this.kept.push(old);
      return;
    }
    this.added.push(entryOf(path, st, sha256));
  }

  /**
   * Writes what this run saw, when that differs from what was loaded. Never throws: a
   * cache that cannot be written costs the next run time, not this one its result.
   */
  async save(): Promise<void> {
    // A path walked twice in one run is kept twice (loading drops the copy), so an equal
    // count may hide a deleted file; its entry then lingers, never matching a new file.
    if (this.added.length === 0 && this.kept.length === this.previous.size) return;
    const body: CacheFile = { version: VERSION, root: this.root, entries: [...this.kept, ...this.added] };
    const tmp = `${this.file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await mkdir(join(this.file, '..'), { recursive: true });
      await writeFile(tmp, JSON.stringify(body));
      await rename(tmp, this.file);
    } catch {
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}

async function load(file: string, root: string): Promise<ReadonlyMap<string, Entry>> {
  const entries = new Map<string, Entry>();
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<CacheFile> | null;
    if (parsed?.version !== VERSION || parsed.root !== root || !Array.isArray(parsed.entries)) return entries;
    for (const e of parsed.entries) {
      if (!isEntry(e)) return new Map();
      entries.set(e[0], e);
    }
  } catch {
    // Missing, unreadable or corrupt: start again from nothing.
  }
  return entries;
}

function isEntry(e: unknown): e is Entry {
  return (
    Array.isArray(e) &&
    e.length === 6 &&
    typeof e[0] === 'string' &&
    typeof e[1] === 'string' &&
    e[1].length === 64 &&
    typeof e[2] === 'number' &&
    typeof e[3] === 'number' &&
    typeof e[4] === 'number' &&
    typeof e[5] === 'number'
  );
}
