import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { constants, createGzip } from 'node:zlib';
import { hashing } from './hashing.js';
import { OciImageError } from './oci-image-error.js';

/** What a layer blob is: its gzipped digest and size, and the digest of the tar inside (the diff ID). */
export interface LayerBlob {
  readonly digest: string;
  readonly size: number;
  readonly diffId: string;
}

/**
 * GNU tar flags that make the archive of a tree depend on the tree alone: members sorted
 * by name, every mtime the same, no atime/ctime, and pax header names without the PID
 * GNU tar puts in them by default. Owners stay numeric, modes, links, devices and
 * extended attributes (file capabilities) are kept, since the image must run as built.
 */
function tarArgs(rootfs: string, mtime: number): string[] {
  return [
    '--create',
    '--file=-',
    `--directory=${rootfs}`,
    '--numeric-owner',
    '--xattrs',
    '--xattrs-include=*',
    '--sort=name',
    '--format=posix',
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
    `--mtime=@${mtime}`,
    '.',
  ];
}

/**
 * Writes `rootfs` as a gzipped layer tar to `file`. The gzip header of Node's zlib has
 * no name and a zero mtime, and the level is fixed, so the same tree gives the same blob.
 * `rootfs`'s own mode and owner become those of the image's `/`.
 */
export async function writeLayer(rootfs: string, file: string, mtime: number): Promise<LayerBlob> {
  const info = await stat(rootfs).catch(() => undefined);
  if (!info?.isDirectory()) throw new OciImageError(`the root filesystem ${rootfs} is not a directory`);
  const tar = spawn('tar', tarArgs(rootfs, mtime), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  let errors = '';
  tar.stderr.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-4000)));
  const exit = new Promise<number | null>((resolve, reject) => {
    tar.once('error', reject);
    tar.once('close', (code) => resolve(code));
  });
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  let size = 0;
  try {
    await pipeline(
      tar.stdout,
      hashing(diff),
      createGzip({ level: constants.Z_DEFAULT_COMPRESSION }),
      hashing(blob, (n) => (size += n)),
      createWriteStream(file),
    );
  } catch (e) {
    tar.kill();
    throw new OciImageError(`cannot archive ${rootfs}: ${(e as Error).message}`);
  }
  const code = await exit;
  if (code !== 0) throw new OciImageError(`cannot archive ${rootfs}: tar exited with ${code}: ${errors.trim()}`);
  return { digest: `sha256:${blob.digest('hex')}`, size, diffId: `sha256:${diff.digest('hex')}` };
}
