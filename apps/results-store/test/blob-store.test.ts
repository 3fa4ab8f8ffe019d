import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../../test/support/results-store.js';
import { BlobMismatchError, BlobStore, type StagedBlob } from '../src/blobs/blob-store.js';
import { asSha256 } from '../src/ids.js';

async function* pieces(bytes: Buffer, size = 1000): AsyncIterable<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

const expected = (bytes: Buffer, what = 'a blob') => ({ sha256: asSha256(sha256Hex(bytes)), size: bytes.length, what });

describe('the blob store', () => {
  let dir: string;
  let blobs: BlobStore;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-rs-blobs-'));
    blobs = new BlobStore(join(dir, 'blobs'));
    await blobs.init();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('stages and commits hundreds of small blobs at once (and a large one beside them), each stored byte for byte', async () => {
    const contents = [...Array.from({ length: 300 }, (_, i) => randomBytes(1 + ((i * 997) % 9000))), Buffer.alloc(0), randomBytes(3 * 1024 * 1024)];
    const staged = await Promise.all(contents.map((bytes) => blobs.stage(pieces(bytes), expected(bytes), { deferSync: true })));
    // Staged is not stored.
    expect(await blobs.size(staged[0]!.sha256)).toBeUndefined();
    await blobs.commitAll(staged);
    for (const bytes of contents) expect((await readFile(blobs.pathOf(asSha256(sha256Hex(bytes))))).equals(bytes)).toBe(true);
    expect(await readdir(join(dir, 'blobs', 'tmp'))).toEqual([]);
  });

  it('refuses a blob whose bytes are not what was declared, small or large, and keeps nothing of it', async () => {
    const claimed = Buffer.from('the bytes the name is the digest of');
    const sent = Buffer.from('other bytes, just as long, sent in!');
    const refusals: [Buffer, ReturnType<typeof expected>, RegExp][] = [
      [sent, { ...expected(claimed), what: 'forged' }, /^forged: SHA-256 is [0-9a-f]{64}, but [0-9a-f]{64} declared$/],
      [Buffer.concat([claimed, claimed]), { ...expected(claimed), what: 'longer' }, /^longer: more than the declared 35 bytes$/],
      [claimed.subarray(0, 10), { ...expected(claimed), what: 'shorter' }, /^shorter: 10 bytes, but 35 declared$/],
      [randomBytes(400 * 1024), { ...expected(randomBytes(400 * 1024)), what: 'large' }, /^large: SHA-256 is/],
    ];
    for (const [bytes, declared, message] of refusals) {
      const error = await blobs.stage(pieces(bytes), declared).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(BlobMismatchError);
      expect((error as Error).message).toMatch(message);
      expect(await blobs.size(declared.sha256)).toBeUndefined();
    }
    expect(await readdir(join(dir, 'blobs', 'tmp'))).toEqual([]);
  });

  it('claims a blob it holds, refreshing its time, and not one it does not; a discarded blob is not stored', async () => {
    const bytes = randomBytes(2048);
    const blob: StagedBlob = await blobs.stage(pieces(bytes), expected(bytes));
    await blob.commit();
    const path = blobs.pathOf(blob.sha256);
    await utimes(path, new Date(1000), new Date(1000));
    const other = randomBytes(100);
    const [held, absent] = await Promise.all([blobs.claim(blob.sha256), blobs.claim(asSha256(sha256Hex(other)))]);
    expect([held, absent]).toEqual([true, false]);
    expect((await stat(path)).mtimeMs).toBeGreaterThan(Date.now() - 60_000);

    const discarded = await blobs.stage(pieces(other), expected(other));
    await discarded.discard();
    expect(await blobs.claim(discarded.sha256)).toBe(false);
    expect(await readdir(join(dir, 'blobs', 'tmp'))).toEqual([]);
  });
});
