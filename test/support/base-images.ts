import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const REPO = join(import.meta.dirname, '../..');
/** Where tools/make-base-images.mjs puts them by default, kept across test runs. */
export const BASE_IMAGES = '/var/lib/cairn/images';

function has(layout: string, ref: string): boolean {
  const index = join(layout, 'index.json');
  if (!existsSync(index)) return false;
  const { manifests = [] } = JSON.parse(readFileSync(index, 'utf8')) as { manifests?: { annotations?: Record<string, string> }[] };
  return manifests.some((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref);
}

/**
 * The OCI layout with cairn/busybox:latest and cairn/debian:bookworm (debootstrap
 * minbase), made by tools/make-base-images.mjs the first time on a machine (a few
 * minutes: it downloads Debian) and reused after. A lock keeps concurrent test files
 * from debootstrapping twice.
 */
export async function debianBaseImages(): Promise<string> {
  if (has(BASE_IMAGES, 'cairn/debian:bookworm')) return BASE_IMAGES;
  await mkdir(BASE_IMAGES, { recursive: true });
  await promisify(execFile)('flock', [`${BASE_IMAGES}.lock`, process.execPath, join(REPO, 'tools/make-base-images.mjs'), BASE_IMAGES], {
    maxBuffer: 16 << 20,
  });
  return BASE_IMAGES;
}
