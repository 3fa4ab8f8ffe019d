import { createHash } from 'node:crypto';
import { constants, lstat, open, readdir, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import type { Manifest } from './step-id.js';

/**
 * Copy manifests with OBuilder's semantics (lib/manifest.ml): the manifest is what the
 * copy step's ID is computed from, so the walk must see exactly what OBuilder sees.
 */

export class ManifestError extends Error {
  constructor(message: string, readonly path: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

// Large enough to keep syscalls few, small enough that huge files never sit in memory.
const CHUNK = 1 << 20;
// Symlinks are never followed, even if one replaces a file between lstat and open.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0);
const utf8 = new TextDecoder('utf-8', { fatal: true });

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'unknown file type';
}

/** lstat, with "not there" turned into the user-facing error for the source path. */
async function lstatSource(fsPath: string, src: string): Promise<Stats> {
  try {
    return await lstat(fsPath);
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
async function checkPath(srcDir: string, src: string): Promise<string[]> {
  const parts = src.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw new ManifestError("can't use .. in source paths", src);
  for (let i = 0; i < parts.length - 1; i++) {
    const rel = parts.slice(0, i + 1).join('/');
    const st = await lstatSource(join(srcDir, ...parts.slice(0, i + 1)), src);
    if (st.isDirectory()) continue;
    if (st.isFile()) throw new ManifestError(`not a directory: ${rel}`, rel);
    throw new ManifestError(`not a regular file or directory: ${rel}`, rel);
  }
  return parts;
}

async function hashFile(fsPath: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(fsPath, OPEN_FLAGS);
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/** Directory entries in byte order of their UTF-8 names, which is OCaml's String.compare. */
async function sortedNames(fsPath: string, rel: string): Promise<string[]> {
  const raw = await readdir(fsPath, { encoding: 'buffer' });
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

async function generate(
  srcDir: string,
  parts: readonly string[],
  exclude: ReadonlySet<string>,
  shown: string,
): Promise<Manifest> {
  const path = parts.join('/');
  const fsPath = join(srcDir, ...parts);
  const st = await lstatSource(fsPath, shown);
  if (st.isDirectory()) {
    const children: Manifest[] = [];
    // Sequential on purpose: a wide directory must not open thousands of files at once.
    for (const name of await sortedNames(fsPath, path)) {
      if (!exclude.has(name)) {
        const childPath = path === '' ? name : `${path}/${name}`;
        children.push(await generate(srcDir, [...parts, name], exclude, childPath));
      }
    }
    return { kind: 'dir', path, children };
  }
  if (st.isFile()) return { kind: 'file', path, sha256: await hashFile(fsPath) };
  if (st.isSymbolicLink()) {
    const target = decodeName(await readlink(fsPath, { encoding: 'buffer' }), shown, 'symlink target');
    return { kind: 'symlink', path, target };
  }
  throw new ManifestError(`can't copy ${kindOf(st)}: ${shown}`, shown);
}

/**
 * The manifest of `src` (a '/'-separated path, relative to srcDir whatever its leading
 * '/' or '.' components) with every entry whose base name is in `exclude` left out.
 */
export async function generateManifest(
  srcDir: string,
  src: string,
  exclude: readonly string[],
): Promise<Manifest> {
  const parts = await checkPath(srcDir, src);
  return generate(srcDir, parts, new Set(exclude), src);
}
