import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { FetchError } from './fetcher.js';

/**
 * Layer compression, told from the first bytes rather than the media type: `docker
 * export` is plain tar, and registries label layers loosely. gzip is Node's own; zstd
 * needs the `zstd` command (Node 20 has no zstd), which this module alone runs.
 */
export type Compression = 'gzip' | 'zstd' | 'none';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

export async function detectCompression(file: string): Promise<Compression> {
  const handle = await open(file, 'r');
  try {
    const { buffer } = await handle.read({ buffer: Buffer.alloc(4), position: 0 });
    if (buffer.subarray(0, 2).equals(GZIP_MAGIC)) return 'gzip';
    if (buffer.equals(ZSTD_MAGIC)) return 'zstd';
    return 'none';
  } finally {
    await handle.close();
  }
}

let zstdInstalled: Promise<boolean> | undefined;

/** Whether the `zstd` command can be run (checked once per process). */
export function hasZstd(): Promise<boolean> {
  zstdInstalled ??= import('execa')
    .then(({ execa }) => execa('zstd', ['--version']))
    .then(
      () => true,
      () => false,
    );
  return zstdInstalled;
}

/** The uncompressed bytes of `file`. Stopping early is fine: the decompressor is ended. */
export async function* decompress(file: string, compression: Compression): AsyncGenerator<Buffer> {
  if (compression === 'none') {
    yield* createReadStream(file);
  } else if (compression === 'gzip') {
    const source = createReadStream(file);
    const gunzip = createGunzip();
    source.on('error', (e) => gunzip.destroy(e));
    try {
      yield* source.pipe(gunzip);
    } finally {
      source.destroy();
    }
  } else {
    if (!(await hasZstd())) throw new FetchError('the layer is zstd-compressed but the zstd command is not installed');
    // Loaded on first use, like every command: most builds never unpack a layer.
    const { execa } = await import('execa');
    const zstd = execa('zstd', ['-d', '-c', '-q', '--', file], { buffer: { stdout: false, stderr: true } });
    try {
      yield* zstd.stdout;
      await zstd;
    } finally {
      // A consumer that stopped early leaves it running; kill() of an exited process is a no-op.
      zstd.kill();
      await zstd.catch(() => undefined);
    }
  }
}
