/**
 * syncfs(2) on the filesystem that holds a path, through coreutils' `sync --file-system`
 * (Node has no binding for it). One call makes every file and directory entry written
 * there durable: for a batch of hundreds of small blobs that is one flush of the journal
 * and the disk cache instead of one per file, which is what an fsync per blob costs.
 */
import { execFile } from 'node:child_process';

let available = process.platform === 'linux';

/**
 * Resolves true once everything written on `path`'s filesystem is durable; false when
 * that could not be done this way (not Linux, no coreutils, or `sync` failed, an I/O
 * error among them), and the caller must fsync what it wrote itself, which also
 * reports the error where there is one.
 */
export function syncFilesystem(path: string): Promise<boolean> {
  if (!available) return Promise.resolve(false);
  return new Promise((resolve) => {
    execFile('sync', ['--file-system', path], { timeout: 60_000 }, (error) => {
      if ((error as NodeJS.ErrnoException | null)?.code === 'ENOENT') available = false;
      resolve(error === null);
    });
  });
}
