import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, open, rm, symlink } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ObjectStore } from '@nats-io/obj';
import { extract, type Headers } from 'tar-stream';
import { limits, objectStores } from '@cairn/contracts';

/**
 * A build context arrives as a tar in the `cairn-contexts` object store, named by the
 * SHA-256 of the tar. The worker downloads it to a file, checks the digest (a context
 * whose bytes do not match its name is refused: someone altered it), and only then
 * extracts it, refusing any entry that would land outside the directory (absolute
 * names, `..`, writes through a symlink) and anything but files, directories and links.
 */
export class ContextError extends Error {
  override readonly name = 'ContextError';
}

/** Downloads, verifies and extracts context `digest` into `dir` (created); `scratch` holds the tar meanwhile. */
export async function fetchContext(store: ObjectStore, digest: string, dir: string, scratch: string): Promise<void> {
  const tarFile = join(scratch, 'context.tar');
  await download(store, digest, tarFile);
  try {
    await mkdir(dir, { recursive: true });
    await extractSafely(tarFile, dir, digest);
  } finally {
    await rm(tarFile, { force: true });
  }
}

async function download(store: ObjectStore, digest: string, file: string): Promise<void> {
  const where = `context ${digest} in object store ${objectStores.contexts}`;
  const result = await store.get(digest);
  if (result === null) throw new ContextError(`${where}: not found (was it uploaded?)`);
  const hash = createHash('sha256');
  let size = 0;
  const out = await open(file, 'w', 0o600);
  try {
    // A reader, not `for await`: the DOM typings some tests load give web streams no async iterator.
    const reader = result.data.getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      const piece = next.value;
      size += piece.length;
      if (size > limits.maxContextBytes) throw new ContextError(`${where}: larger than the limit of ${limits.maxContextBytes} bytes`);
      hash.update(piece);
      await out.write(piece);
    }
  } finally {
    await out.close();
  }
  const error = await result.error;
  if (error) throw new ContextError(`${where}: download failed: ${error.message}`);
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== digest) throw new ContextError(`${where}: its content has digest ${actual}, not its name: refused`);
}

/** An entry name as a safe relative path, or undefined for the archive's root itself. */
function safeName(name: string, digest: string): string | undefined {
  const normal = posix.normalize(name.replace(/\/+$/, ''));
  if (normal === '.' || normal === '') return undefined;
  if (posix.isAbsolute(normal) || normal === '..' || normal.startsWith('../') || name.split('/').includes('..')) {
    throw new ContextError(`context ${digest}: entry "${name}" would land outside the context directory: refused`);
  }
  return normal;
}

async function extractSafely(tarFile: string, dir: string, digest: string): Promise<void> {
  // Links are made after every file: a file is then never written through a symlink
  // that an earlier entry planted, and a hard link's target already exists.
  const hardLinks: { path: string; target: string }[] = [];
  const symlinks: { path: string; target: string }[] = [];
  const ex = extract();
  ex.on('entry', (header: Headers, entry: NodeJS.ReadableStream, next: (e?: unknown) => void) => {
    extractEntry(header, entry).then(() => next(), (e: unknown) => {
      entry.resume();
      ex.destroy(e as Error);
    });
  });
  const extractEntry = async (header: Headers, entry: NodeJS.ReadableStream): Promise<void> => {
    const name = safeName(header.name, digest);
    const path = name === undefined ? dir : join(dir, name);
    switch (header.type) {
      case 'directory':
        await mkdir(path, { recursive: true, mode: 0o755 });
        entry.resume();
        break;
      case 'file':
      case 'contiguous-file':
        if (name === undefined) throw new ContextError(`context ${digest}: a file entry names the root`);
        await mkdir(dirname(path), { recursive: true, mode: 0o755 });
        // No set-id bits from someone else's archive.
        await pipeline(entry, createWriteStream(path, { mode: (header.mode ?? 0o644) & 0o777 }));
        break;
      case 'symlink':
        if (name === undefined) throw new ContextError(`context ${digest}: a symlink entry names the root`);
        symlinks.push({ path, target: header.linkname ?? '' });
        entry.resume();
        break;
      case 'link': {
        if (name === undefined) throw new ContextError(`context ${digest}: a link entry names the root`);
        const target = safeName(header.linkname ?? '', digest);
        if (target === undefined) throw new ContextError(`context ${digest}: entry "${header.name}" links to the root`);
        hardLinks.push({ path, target: join(dir, target) });
        entry.resume();
        break;
      }
      default:
        throw new ContextError(`context ${digest}: entry "${header.name}" is a ${header.type ?? 'special file'}; only files, directories and links are allowed`);
    }
  };
  // The entry API (not async iteration) works with tar-stream 2 and 3 alike.
  await pipeline(createReadStream(tarFile), ex);
  for (const link of hardLinks) {
    await mkdir(dirname(link.path), { recursive: true });
    // A copy, not a link: the context is read-only input, and copies cannot alias.
    await copyFile(link.target, link.path);
  }
  const linkNames = new Set(symlinks.map((l) => l.path));
  for (const link of symlinks) {
    // A symlink under another would be created wherever that one points.
    for (let parent = dirname(link.path); parent.length > dir.length; parent = dirname(parent)) {
      if (linkNames.has(parent)) throw new ContextError(`context ${digest}: "${link.path.slice(dir.length + 1)}" lies under the symlink "${parent.slice(dir.length + 1)}": refused`);
    }
  }
  for (const link of symlinks) {
    await mkdir(dirname(link.path), { recursive: true });
    await symlink(link.target, link.path);
  }
}
