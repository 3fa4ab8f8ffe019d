import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OciImageError } from './oci-image-error.js';

// tar-stream is loaded on first use: @cairn/fetcher imports this library for its
// vocabulary on every `cairn` start, and writes no archive. Its CommonJS exports are
// taken from `default`: the CLI's bundle gives that one alone (`pack` is undefined there).
const loadTarStream = async () => (await import('tar-stream')).default;

/** A member of an archive: a small document given whole, or a file copied in. */
export type ArchiveMember = { readonly name: string; readonly content: string } | { readonly name: string; readonly file: string; readonly size: number };

/**
 * A tar of `members` in their order, each mode 0644 with time 0 and owner 0, so that the
 * same members give the same bytes. A failure to list or read them fails the stream.
 */
export function reproducibleTar(members: () => Promise<readonly ArchiveMember[]>): Readable {
  const out = new PassThrough();
  const write = async () => {
    const tar = (await loadTarStream()).pack();
    tar.on('error', (e) => out.destroy(e));
    tar.pipe(out);
    for (const member of await members()) {
      await new Promise<void>((resolve, reject) => {
        const header = { name: member.name, mode: 0o644, mtime: new Date(0) };
        const done = (e?: Error | null) => (e ? reject(e) : resolve());
        if ('content' in member) {
          tar.entry(header, member.content, done);
        } else {
          createReadStream(member.file)
            .on('error', reject)
            .pipe(tar.entry({ ...header, size: member.size }, done));
        }
      });
    }
    tar.finalize();
  };
  write().catch((e: unknown) => out.destroy(e as Error));
  return out;
}

/**
 * The OCI layout at `layoutDir` as one uncompressed tar, what skopeo calls an
 * `oci-archive` (and the fetcher reads in place): oci-layout, index.json and every blob,
 * in name order. Every image the layout names is in it, by the names index.json gives.
 */
export function ociArchive(layoutDir: string): Readable {
  return reproducibleTar(async () => {
    try {
      // Dot files in blobs/ are a writer's temporaries, not blobs.
      const blobs = (await readdir(join(layoutDir, 'blobs', 'sha256'))).filter((name) => !name.startsWith('.')).sort();
      const names = ['oci-layout', 'index.json', ...blobs.map((hex) => `blobs/sha256/${hex}`)];
      return await Promise.all(names.map(async (name) => ({ name, file: join(layoutDir, name), size: (await stat(join(layoutDir, name))).size })));
    } catch (e) {
      throw new OciImageError(`cannot archive the OCI layout ${layoutDir}: ${(e as Error).message}`);
    }
  });
}

/** `ociArchive` written to `file` (for `skopeo copy oci-archive:FILE:NAME`, or `--fetcher oci:FILE`). */
export async function writeOciArchive(layoutDir: string, file: string): Promise<void> {
  await pipeline(ociArchive(layoutDir), createWriteStream(file));
}
