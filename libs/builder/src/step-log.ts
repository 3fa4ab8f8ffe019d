import { copyFile, mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const UNWRITTEN_LIMIT = 1024 * 1024;

/**
 * The output log of one step while it is being built: appended by the sandbox, and
 * tailed from its first byte by every requester of the step, however late it joins.
 * It lives in a file (never clipped, never held in memory), which is published with
 * the step's result and replayed on later cache hits. Once finished, the readers still
 * following it go on from a private copy outside the step's directory (see `finish`).
 */
export class StepLog {
  private size = 0;
  private finished = false;
  private failure: Error | undefined;
  private pending: Promise<void> = Promise.resolve();
  private wakeups = new Set<() => void>();
  /**
   * The writer, each active reader and each holder (see `hold`); the read handle
   * closes when it drops to zero.
   */
  private users = 1;
  /** Reads one at a time, so that `finish` can swap the reader between two of them. */
  private reads: Promise<unknown> = Promise.resolve();
  /** The directory of the readers' copy, once they moved to it. */
  private copyDir: string | undefined;

  private constructor(
    private readonly path: string,
    private readonly writer: FileHandle,
    private reader: FileHandle,
  ) {}

  static async create(path: string): Promise<StepLog> {
    const writer = await open(path, 'wx', 0o644);
    const reader = await open(path, 'r');
    return new StepLog(path, writer, reader);
  }

  /** Appends a chunk; writes keep their order without the caller awaiting each one. */
  write(chunk: Uint8Array): void {
    const copy = Uint8Array.from(chunk);
    this.pending = this.pending.then(async () => {
      if (!this.failure) {
        try {
          await this.writer.write(copy);
          this.size += copy.length;
        } catch (e) {
          this.failure = e as Error;
        }
      }
      if (this.failure) this.keepInMemory(copy);
      this.wake();
    });
  }

  /**
   * Once the file cannot grow (the store is full), later output is still shown to the
   * requesters: it says why the step failed. Kept in memory, up to a bound.
   */
  private readonly unwritten: Uint8Array[] = [];
  private unwrittenBytes = 0;

  private keepInMemory(chunk: Uint8Array): void {
    if (this.unwrittenBytes > UNWRITTEN_LIMIT) return;
    this.unwrittenBytes += chunk.length;
    this.unwritten.push(this.unwrittenBytes > UNWRITTEN_LIMIT ? Buffer.from(`\n[cairn: output past this point was lost: ${this.failure?.message}]\n`) : chunk);
  }

  /** Waits for every write; rejects if one failed (a full disk must fail the step). */
  async finish(): Promise<void> {
    await this.pending;
    this.finished = true;
    this.wake();
    await this.writer.close();
    if (this.users > 1) await this.moveReaders();
    await this.release();
    if (this.failure) throw this.failure;
  }

  /**
   * Readers still following the finished log (or holding it for late joiners) go on from
   * a copy outside the step's directory, so that no file stays open there while the store
   * publishes it: ZFS renames a dataset into place only once nothing is open in it (and
   * zfs-fuse only once it is unmounted). A copy that cannot be made leaves them on the
   * file itself, which the other stores publish all the same.
   */
  private async moveReaders(): Promise<void> {
    let dir: string | undefined;
    try {
      dir = await mkdtemp(join(tmpdir(), 'cairn-step-log-'));
      await copyFile(this.path, join(dir, 'log'));
      const copy = await open(join(dir, 'log'), 'r');
      const moved = dir;
      const swap = this.reads.then(async () => {
        const original = this.reader;
        this.reader = copy;
        this.copyDir = moved;
        await original.close();
      });
      this.reads = swap.catch(() => undefined);
      await swap;
    } catch {
      if (dir !== undefined && this.copyDir !== dir) await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Keeps the log readable until `release`, for requesters that may still join after
   * the last byte is written (while the step is being published).
   */
  hold(): void {
    this.users++;
  }

  async release(): Promise<void> {
    if (--this.users > 0) return;
    await this.reader.close();
    if (this.copyDir !== undefined) await rm(this.copyDir, { recursive: true, force: true });
  }

  private read(buffer: Uint8Array, length: number, offset: number): Promise<{ bytesRead: number }> {
    const read = this.reads.then(() => this.reader.read(buffer, 0, length, offset));
    this.reads = read.catch(() => undefined);
    return read;
  }

  /**
   * Every byte of the log from the start, following it until it is finished. The
   * reader is counted at once (not at the first `next`), so that a log finishing
   * before the tail starts still has its file open for it; iterate what this returns.
   */
  tail(): AsyncGenerator<Uint8Array> {
    this.users++;
    return this.readFromStart();
  }

  private async *readFromStart(): AsyncGenerator<Uint8Array> {
    try {
      let offset = 0;
      let unwritten = 0;
      const buffer = new Uint8Array(64 * 1024);
      for (;;) {
        if (offset < this.size) {
          const { bytesRead } = await this.read(buffer, Math.min(buffer.length, this.size - offset), offset);
          offset += bytesRead;
          yield buffer.slice(0, bytesRead);
        } else if (unwritten < this.unwritten.length) {
          yield this.unwritten[unwritten++]!;
        } else if (this.finished) {
          return;
        } else {
          await new Promise<void>((resolve) => this.wakeups.add(resolve));
        }
      }
    } finally {
      await this.release();
    }
  }

  private wake(): void {
    const waiting = [...this.wakeups];
    this.wakeups.clear();
    for (const resolve of waiting) resolve();
  }
}
