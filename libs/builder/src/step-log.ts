import { readFileSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

const UNWRITTEN_LIMIT = 1024 * 1024;

/**
 * The output log of one step while it is being built: appended by the sandbox, and
 * tailed from its first byte by every requester of the step, however late it joins.
 * It lives in a file (never clipped, never held in memory), which is published with
 * the step's result and replayed on later cache hits.
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

  private constructor(
    private readonly writer: FileHandle,
    private readonly reader: FileHandle,
  ) {}

  static async create(path: string): Promise<StepLog> {
    const writer = await open(path, 'wx', 0o644);
    const reader = await open(path, 'r');
    return new StepLog(writer, reader);
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
    this.unwritten.push(this.unwrittenBytes > UNWRITTEN_LIMIT
      ? Buffer.from(`\n[cairn: output past this point was lost: ${this.failure?.message}]\n`)
      : chunk);
  }

  /** Waits for every write; rejects if one failed (a full disk must fail the step). */
  async finish(): Promise<void> {
    await this.pending;
    this.finished = true;
    this.wake();
    await this.writer.close();
    await this.release();
    if (this.failure) throw this.failure;
  }

  /**
   * Keeps the log readable until `release`, for requesters that may still join after
   * the last byte is written (while the step is being published).
   */
  hold(): void {
    this.users++;
  }

  async release(): Promise<void> {
    if (--this.users === 0) await this.reader.close();
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
          const { bytesRead } = await this.reader.read(buffer, 0, Math.min(buffer.length, this.size - offset), offset);
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

/** Logs up to this size are replayed with one synchronous read: most are, and hits must be cheap. */
const SMALL_LOG = 1024 * 1024;

/** A published log, chunk by chunk. */
export async function* replayLog(path: string): AsyncGenerator<Uint8Array> {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (size === 0) return;
  if (size <= SMALL_LOG) {
    yield readFileSync(path);
    return;
  }
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  try {
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) return;
      yield buffer.slice(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}
