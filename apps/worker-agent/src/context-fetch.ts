import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, open, rm, symlink } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { extract, type Headers } from 'tar-stream';
import { BlobError, limits, readBlob, type BlobRef } from '@cairn/contracts';

/**
 * A build context arrives as a tar, a blob of the job's client named by the SHA-256 of
 * the tar (blob-store.ts in @cairn/contracts). The worker downloads it to a file, checks
 * the digest (a context whose bytes do not match its name is refused), and only then
 * extracts it, refusing any entry that would land outside the directory (absolute
 * names, `..`, writes through a symlink) and anything but files, directories and links.
 */
export class ContextError extends Error {
  override readonly name = 'ContextError';
}

/** Downloads, verifies and extracts `context` into `dir` (created); `scratch` holds the tar meanwhile. */
export async function fetchContext(nc: NatsConnection, context: BlobRef, dir: string, scratch: string): Promise<void> {
  const tarFile = join(scratch, 'context.tar');
  const digest = `sha256:${context.sha256}`;
  await download(nc, context, tarFile);
  try {
    await mkdir(dir, { recursive: true });
    await extractSafely(tarFile, dir, digest);
  } finally {
    await rm(tarFile, { force: true });
  }
}

async function download(nc: NatsConnection, context: BlobRef, file: string): Promise<void> {
  const out = await open(file, 'w', 0o600);
  try {
    const blob = await readBlob(nc, context, limits.maxContextBytes);
    if (blob === undefined) throw new ContextError(`context sha256:${context.sha256} of client ${context.owner}: not found (was it uploaded?)`);
    for await (const piece of blob.bytes) await out.write(piece);
  } catch (e) {
    if (e instanceof BlobError) throw new ContextError(e.message);
    throw e;
  } finally {
    await out.close();
  }
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
    extractEntry(header, entry).then(
      () => next(),
      (e: unknown) => {
        entry.resume();
        ex.destroy(e as Error);
      },
    );
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
        throw new ContextError(
          `context ${digest}: entry "${header.name}" is a ${header.type ?? 'special file'}; only files, directories and links are allowed`,
        );
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
      if (linkNames.has(parent))
        throw new ContextError(`context ${digest}: "${link.path.slice(dir.length + 1)}" lies under the symlink "${parent.slice(dir.length + 1)}": refused`);
    }
  }
  for (const link of symlinks) {
    await mkdir(dirname(link.path), { recursive: true });
    await symlink(link.target, link.path);
  }
}
