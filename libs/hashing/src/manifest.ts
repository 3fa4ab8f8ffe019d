/**
 * Copy manifests with OBuilder's semantics (lib/manifest.ml): the manifest is what the
 * copy step's ID is computed from, so the walk must see exactly what OBuilder sees.
 *
 * The walk stats every entry first (synchronous calls, a few microseconds each against
 * tens for the promise versions: 55,000 of them take about 0.2 s of CPU) and only then
 * reads the files whose digests the cache does not hold, many at once (hash-files.ts).
 * A file the cache vouches for is never opened.
 */
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { hashFiles } from './hash-files.js';
import type { Manifest } from './step-id.js';

export class ManifestError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message);
    this.name = 'ManifestError';
  }
}

/**
 * Digests already known, by path below the context and the file's lstat. `get` answers
 * only when it can vouch that the file still has the content it was read with; `set`
 * gets the lstat taken before the file was read.
 */
export interface FileDigestCache {
  get(path: string, st: Stats): string | undefined;
  set(path: string, st: Stats, sha256: string): void;
}

// A stat costs microseconds; a long walk still lets timers and I/O callbacks run this often.
const YIELD_EVERY = 4096;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'unknown file type';
}

/** lstat, with "not there" turned into the user-facing error for the source path. */
function lstatSource(fsPath: string, src: string): Stats {
  try {
    return lstatSync(fsPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ManifestError(`source path "${src}" not found in the build context`, src);
    }
    throw err;
  }
}

/**
 * Resolve src to its components below srcDir, checking every directory on the way
 * without following symlinks (a symlink in the middle could point outside the context).
 */
function checkPath(srcDir: string, src: string): string[] {
  const parts = src.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw new ManifestError("can't use .. in source paths", src);
  for (let i = 0; i < parts.length - 1; i++) {
    const rel = parts.slice(0, i + 1).join('/');
    const st = lstatSource(join(srcDir, ...parts.slice(0, i + 1)), src);
    if (st.isDirectory()) continue;
    if (st.isFile()) throw new ManifestError(`not a directory: ${rel}`, rel);
    throw new ManifestError(`not a regular file or directory: ${rel}`, rel);
  }
  return parts;
}

// A replacement character may stand for bytes that are not UTF-8; a surrogate (a character
// beyond U+FFFF) sorts otherwise in UTF-16 than in UTF-8.
const NOT_PLAIN = /[\uD800-\uDFFF\uFFFD]/;

/** Directory entries in byte order of their UTF-8 names, which is OCaml's String.compare. */
function sortedNames(fsPath: string, rel: string): string[] {
  // The common case, about three times cheaper than names as buffers: for these names the
  // order of UTF-16 code units is that of UTF-8 bytes.
  const names = readdirSync(fsPath);
  if (!names.some((n) => NOT_PLAIN.test(n))) return names.sort();
  const raw = readdirSync(fsPath, { encoding: 'buffer' });
  raw.sort(Buffer.compare);
  return raw.map((name) => decodeName(name, `${rel === '' ? '' : `${rel}/`}<hex ${name.toString('hex')}>`, 'file name'));
}

/** Manifest atoms are text; a lossy decoding could make two different names hash alike. */
function decodeName(bytes: Buffer, shown: string, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ManifestError(`${what} is not valid UTF-8: ${shown}`, shown);
  }
}

type Entry =
  { kind: 'dir'; path: string; children: Entry[] } | { kind: 'file'; path: string; sha256: string } | { kind: 'symlink'; path: string; target: string };

/** A file the cache could not vouch for: its entry gets the digest once it is read. */
interface Unread {
  readonly entry: { sha256: string };
  readonly path: string;
  readonly fsPath: string;
  readonly st: Stats;
}

class Walk {
  readonly unread: Unread[] = [];
  private stats = 0;

  constructor(
    readonly srcDir: string,
    readonly exclude: ReadonlySet<string>,
    readonly cache: FileDigestCache | undefined,
  ) {}

  /** The entry at `path` (`fsPath` on disk). */
  async entry(fsPath: string, path: string, shown: string): Promise<Entry> {
    const st = lstatSource(fsPath, shown);
    return st.isDirectory() ? this.dir(fsPath, path) : this.leaf(st, fsPath, path, shown);
  }

  /** Subdirectories are awaited one by one; files, the bulk, are handled inline. */
  private async dir(fsPath: string, path: string): Promise<Entry> {
    const children: Entry[] = [];
    for (const name of sortedNames(fsPath, path)) {
      if (this.exclude.has(name)) continue;
      const childPath = path === '' ? name : `${path}/${name}`;
      const childFs = `${fsPath}/${name}`;
      const st = lstatSource(childFs, childPath);
      if (++this.stats % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
      children.push(st.isDirectory() ? await this.dir(childFs, childPath) : this.leaf(st, childFs, childPath, childPath));
    }
    return { kind: 'dir', path, children };
  }

  private leaf(st: Stats, fsPath: string, path: string, shown: string): Entry {
    if (st.isFile()) {
      const entry = { kind: 'file' as const, path, sha256: this.cache?.get(path, st) ?? '' };
      if (entry.sha256 === '') this.unread.push({ entry, path, fsPath, st });
      return entry;
    }
    if (st.isSymbolicLink()) {
      const target = decodeName(readlinkSync(fsPath, { encoding: 'buffer' }), shown, 'symlink target');
      return { kind: 'symlink', path, target };
    }
    throw new ManifestError(`can't copy ${kindOf(st)}: ${shown}`, shown);
  }
}

/**
 * The manifest of `src` (a '/'-separated path, relative to srcDir whatever its leading
 * '/' or '.' components) with every entry whose base name is in `exclude` left out.
 * With a cache, a file it vouches for is not read, and every file read is recorded in it.
 */
export async function generateManifest(srcDir: string, src: string, exclude: readonly string[], cache?: FileDigestCache): Promise<Manifest> {
  const walk = new Walk(srcDir, new Set(exclude), cache);
  const parts = checkPath(srcDir, src);
  const manifest = await walk.entry(join(srcDir, ...parts), parts.join('/'), src);
  const digests = await hashFiles(walk.unread.map((u) => u.fsPath));
  walk.unread.forEach((u, i) => {
    u.entry.sha256 = digests[i]!;
    cache?.set(u.path, u.st, u.entry.sha256);
  });
  return manifest;
}
