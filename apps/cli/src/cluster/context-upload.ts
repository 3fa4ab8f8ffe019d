/**
 * A build context travels as one tar, a blob of the uploading client named by the
 * SHA-256 of its bytes (blob-store.ts in @cairn/contracts): the same directory twice is
 * uploaded once, and nobody else can replace or pre-empt it. The tar is made reproducible (sorted
 * names, zero times and owners) so that an unchanged directory has the same digest.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { limits, putBlob } from '@cairn/contracts';
import { UserError } from '../cli-error.js';

export interface UploadedContext {
  readonly digest: string;
  readonly bytes: number;
  /** False when the store already had it. */
  readonly uploaded: boolean;
}

export async function uploadContext(nc: NatsConnection, client: string, dir: string): Promise<UploadedContext> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) throw new UserError(`the build context "${dir}" is not a directory`);
  const tmp = await mkdtemp(join(tmpdir(), 'cairn-context-'));
  try {
    const tarFile = join(tmp, 'context.tar');
    const { execa } = await import('execa');
    await execa('tar', [
      '--sort=name',
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--format=posix',
      '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
      '-cf',
      tarFile,
      '-C',
      dir,
      '.',
    ]);
    const bytes = (await stat(tarFile)).size;
    if (bytes > limits.maxContextBytes) {
      throw new UserError(
        `the build context "${dir}" is ${bytes} bytes as a tar; the limit is ${limits.maxContextBytes} (leave build outputs and .git out of it)`,
      );
    }
    // Hash first: a context the store already has is not sent again.
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(tarFile)) hash.update(chunk as Buffer);
    const sha256 = hash.digest('hex');
    const stored = await putBlob(nc, 'contexts', client, createReadStream(tarFile, { highWaterMark: 128 * 1024 }), sha256);
    return { digest: `sha256:${sha256}`, bytes, uploaded: stored.uploaded };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
