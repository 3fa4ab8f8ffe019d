/**
 * Reads a byte stream piece by piece: a line, then exactly N bytes, then the end. A
 * stream that ends early is a `TruncatedError`, so a cut-off upload is told apart from
 * a wrong one.
 */
export class TruncatedError extends Error {
  override readonly name = 'TruncatedError';
}

/** The stream does not have the declared shape: a line too long, bytes after the end. */
export class FramingError extends Error {
  override readonly name = 'FramingError';
  constructor(
    readonly kind: 'too-long' | 'trailing',
    message: string,
  ) {
    super(message);
  }
}

export class ByteReader {
  private readonly source: AsyncIterator<Uint8Array>;
  private buffered: Uint8Array = new Uint8Array(0);
  private done = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.source = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.source.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    const chunk = next.value instanceof Uint8Array ? next.value : new Uint8Array(next.value as ArrayBuffer);
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    return true;
  }

  /** Bytes up to the first newline (excluded); fails when there is none within `max` bytes. */
  async line(max: number, what: string): Promise<string> {
    let searched = 0;
    for (;;) {
      const at = this.buffered.indexOf(0x0a, searched);
      if (at >= 0) {
        const line = Buffer.from(this.buffered.subarray(0, at)).toString('utf8');
        this.buffered = this.buffered.subarray(at + 1);
        return line;
      }
      searched = this.buffered.length;
      if (searched > max) throw new FramingError('too-long', `${what}: no end of line within ${max} bytes`);
      if (!(await this.fill())) throw new TruncatedError(`${what}: the body ended before the end of the line`);
    }
  }

  /** Exactly `size` bytes, as they arrive. */
  async *take(size: number, what: string): AsyncIterable<Uint8Array> {
    let left = size;
    while (left > 0) {
      if (this.buffered.length === 0 && !(await this.fill())) throw new TruncatedError(`${what}: the body ended ${left} bytes short of the declared ${size}`);
      const piece = this.buffered.subarray(0, Math.min(left, this.buffered.length));
      this.buffered = this.buffered.subarray(piece.length);
      left -= piece.length;
      yield piece;
    }
  }

  /** Fails when anything follows. */
  async end(what: string): Promise<void> {
    if (this.buffered.length > 0 || (await this.fill())) throw new FramingError('trailing', `${what}: unexpected bytes after the last declared artifact`);
  }
}
