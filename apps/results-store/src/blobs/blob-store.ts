/**
 * Content-addressed blob store on disk: artifacts and archived logs, each stored once
 * under the SHA-256 of its bytes however many builds share it.
 *
 * Lifecycle of a blob: `stage` streams bytes into a temporary file, hashing and counting
 * them; a staged blob whose hash or size is not the expected one is deleted and the
 * write fails (the file is fsynced, at once or by `commitAll`). `commit` renames it into
 * place and fsyncs its directory (a blob is either wholly there or absent, never
 * half-written), and the caller commits the database row only after that. `commitAll`
 * does the same for many staged blobs at once, with one flush of the filesystem for
 * all instead of an fsync per file and per directory. A blob no row references is an orphan, removed by garbage collection once older
 * than a grace period; re-using an existing blob refreshes its mtime so that a collection
 * running meanwhile leaves it alone.
 *
 * Reads are verified: `openVerified` hashes the file before handing it out, so a blob
 * altered on disk is refused rather than served.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Sha256 } from '../ids.js';
import { parseSha256 } from '../ids.js';
import { syncFilesystem } from './sync-filesystem.js';

export class BlobMismatchError extends Error {
  override readonly name = 'BlobMismatchError';
}

export class TamperedBlobError extends Error {
  override readonly name = 'TamperedBlobError';
}

export interface Expected {
  readonly sha256: Sha256;
  readonly size: number;
  /** Names the blob in errors (an artifact path, "log of j-..."). */
  readonly what: string;
}

/** A blob written to a temporary file and verified, not yet visible in the store. */
export interface StagedBlob {
  readonly sha256: Sha256;
  readonly size: number;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

export interface BlobEntry {
  readonly sha256: Sha256;
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
}

export class BlobStore {
  private readonly blobDir: string;
  private readonly tmpDir: string;
  /** Where each staged, not yet committed blob's bytes wait, and whether they are fsynced. */
  private readonly stagedFiles = new WeakMap<StagedBlob, { tmp: string; synced: boolean }>();

  constructor(readonly root: string) {
    this.blobDir = join(root, 'sha256');
    this.tmpDir = join(root, 'tmp');
  }

  /** Creates the layout and clears temporary files a crash left behind. */
  async init(): Promise<void> {
    await mkdir(this.blobDir, { recursive: true });
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
  }

  pathOf(sha256: Sha256): string {
    return join(this.blobDir, sha256.slice(0, 2), sha256);
  }

  /** True when the blob is present; refreshes its mtime so a concurrent collection keeps it. */
  async claim(sha256: Sha256): Promise<boolean> {
    const now = new Date();
    try {
      await utimes(this.pathOf(sha256), now, now);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  async size(sha256: Sha256): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch {
      return undefined;
    }
  }

  /**
   * Streams `source` into a temporary file. Fails (and keeps nothing) when the bytes do
   * not hash to `expected.sha256`, when there are more or fewer than `expected.size`,
   * or when the source fails (a truncated upload, a lost connection). The file is
   * fsynced before this resolves, unless `deferSync`: then `commitAll` makes it durable
   * together with the other blobs it commits.
   */
  async stage(source: AsyncIterable<Uint8Array>, expected: Expected, options: { deferSync?: boolean } = {}): Promise<StagedBlob> {
    const tmp = join(this.tmpDir, `${expected.sha256}.${randomBytes(6).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    let file: FileHandle | undefined;
    try {
      file = await open(tmp, 'wx', 0o444);
      for await (const chunk of source) {
        size += chunk.byteLength;
        if (size > expected.size) throw new BlobMismatchError(`${expected.what}: more than the declared ${expected.size} bytes`);
        hash.update(chunk);
        await file.write(chunk);
      }
      if (size !== expected.size) throw new BlobMismatchError(`${expected.what}: ${size} bytes, but ${expected.size} declared`);
      const actual = hash.digest('hex');
      if (actual !== expected.sha256) throw new BlobMismatchError(`${expected.what}: SHA-256 is ${actual}, but ${expected.sha256} declared`);
      if (!options.deferSync) await file.sync();
      await file.close();
      file = undefined;
    } catch (e) {
      await file?.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw e;
    }
    const blob: StagedBlob = {
      sha256: expected.sha256,
      size,
      commit: () => this.commitAll([blob]),
      discard: () => rm(tmp, { force: true }),
    };
    this.stagedFiles.set(blob, { tmp, synced: !options.deferSync });
    return blob;
  }

  /**
   * Makes every staged blob's bytes durable, renames them into place, then makes the
   * names durable: with one syncfs for all when there are many (sync-filesystem.ts),
   * else an fsync per file not yet synced and one per directory they landed in.
   * Resolves only when all of them are durable; a blob renamed before a failure is an
   * orphan until a row names it, as after a crash.
   */
  async commitAll(blobs: readonly StagedBlob[]): Promise<void> {
    const staged = blobs.map((blob) => {
      const file = this.stagedFiles.get(blob);
      if (file === undefined) throw new Error(`blob ${blob.sha256} was not staged by this store, or is committed already`);
      return { blob, ...file };
    });
    const unsynced = staged.filter((s) => !s.synced).map((s) => s.tmp);
    if (unsynced.length > 0 && !(unsynced.length >= SYNCFS_FROM && (await syncFilesystem(this.tmpDir)))) await Promise.all(unsynced.map(fsyncPath));
    const fans = new Set<string>();
    await Promise.all(
      staged.map(async ({ blob, tmp }) => {
        const fan = join(this.blobDir, blob.sha256.slice(0, 2));
        const target = join(fan, blob.sha256);
        try {
          await rename(tmp, target);
        } catch (e) {
          // The first blob of its fan-out directory; trying first spares a mkdir for every other.
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          await mkdir(fan, { recursive: true });
          await rename(tmp, target);
        }
        this.stagedFiles.delete(blob);
        fans.add(fan);
      }),
    );
    if (fans.size >= SYNCFS_FROM && (await syncFilesystem(this.blobDir))) return;
    await Promise.all([...fans].map(fsyncPath));
  }

  /** Stages the blob unless the store already holds it (then undefined, its mtime refreshed). */
  async stageNew(
    source: () => AsyncIterable<Uint8Array> | Promise<AsyncIterable<Uint8Array>>,
    expected: Expected,
    options: { deferSync?: boolean } = {},
  ): Promise<StagedBlob | undefined> {
    if (await this.claim(expected.sha256)) return undefined;
    return this.stage(await source(), expected, options);
  }

  /** Stages and commits, unless the store already holds the blob. */
  async put(source: () => AsyncIterable<Uint8Array> | Promise<AsyncIterable<Uint8Array>>, expected: Expected): Promise<'stored' | 'present'> {
    const staged = await this.stageNew(source, expected);
    if (!staged) return 'present';
    await staged.commit();
    return 'stored';
  }

  /** Hashes the blob, then returns a stream of it; refuses a blob whose bytes no longer match its name. */
  async openVerified(sha256: Sha256): Promise<{ size: number; stream: () => NodeJS.ReadableStream } | undefined> {
    const path = this.pathOf(sha256);
    let info: Stats;
    try {
      info = await stat(path);
    } catch {
      return undefined;
    }
    const actual = await hashFile(path);
    if (actual !== sha256) throw new TamperedBlobError(`blob ${sha256} at ${path} now hashes to ${actual}: refusing to serve it`);
    return { size: info.size, stream: () => createReadStream(path) };
  }

  async hash(sha256: Sha256): Promise<string> {
    return hashFile(this.pathOf(sha256));
  }

  /** Every blob on disk (a file not named by a SHA-256 is not a blob and is skipped). */
  async *list(): AsyncIterable<BlobEntry> {
    for (const fan of await readdir(this.blobDir).catch(() => [] as string[])) {
      const dir = join(this.blobDir, fan);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const sha256 = parseSha256(name);
        const path = join(dir, name);
        if (!sha256 || !name.startsWith(fan)) continue;
        const info = await stat(path).catch(() => undefined);
        if (info?.isFile()) yield { sha256, path, size: info.size, mtimeMs: info.mtimeMs };
      }
    }
  }

  /** Deletes a blob unless it was claimed (mtime refreshed) after `notClaimedSince`. */
  async removeIfIdle(sha256: Sha256, notClaimedSince: number): Promise<boolean> {
    const path = this.pathOf(sha256);
    const info = await stat(path).catch(() => undefined);
    if (!info || info.mtimeMs > notClaimedSince) return false;
    await rm(path, { force: true });
    return true;
  }

  async usedBytes(): Promise<number> {
    let total = 0;
    for await (const blob of this.list()) total += blob.size;
    return total;
  }
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** From this many files or directories on, one syncfs costs less than an fsync each. */
const SYNCFS_FROM = 4;

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
