/**
 * `cairn import --resolve`: what the Dockerfile import needs of each base image (its
 * config's Env, WorkingDir and User, its /etc/passwd and /etc/group), read through the
 * fetcher `cairn build` uses, so that the spec says what the build will find.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fetcher } from '@cairn/fetcher';
import type { BaseImage } from '@cairn/spec';
import { resolveInRoot } from './snapshot-files.js';

/**
 * Unpacks each image into a scratch directory (a fetcher hands out whole root
 * filesystems; the files are read from inside it, symlinks kept within), then removes it.
 */
export async function readBaseImages(
  fetcher: Fetcher,
  images: readonly string[],
  log: (line: string) => void = () => undefined,
): Promise<Record<string, BaseImage>> {
  const read: Record<string, BaseImage> = {};
  for (const image of images) {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-import-'));
    try {
      const rootfs = join(dir, 'rootfs');
      // A fetcher fills an empty directory, as the store hands it one.
      await mkdir(rootfs);
      const fetched = await fetcher.fetch(image, rootfs, log);
      const passwd = await readOptional(rootfs, '/etc/passwd');
      const group = await readOptional(rootfs, '/etc/group');
      read[image] = {
        env: fetched.env,
        ...(fetched.workingDir ? { workingDir: fetched.workingDir } : {}),
        ...(fetched.user ? { user: fetched.user } : {}),
        ...(passwd === undefined ? {} : { passwd }),
        ...(group === undefined ? {} : { group }),
      };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return read;
}

/** A file of the image, or undefined where it has none (a distroless image may have no /etc/group). */
async function readOptional(rootfs: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(await resolveInRoot(rootfs, path), 'utf8');
  } catch (e) {
    if (['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw e;
  }
}
