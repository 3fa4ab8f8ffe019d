/**
 * Secret masking of step output, as GitHub Actions does it: every known form of a secret
 * value that a step prints becomes `***` before the output reaches the step log, so the
 * live stream, the stored log, its replay on a cache hit and everything downstream (the
 * worker's NATS log, the results store) only ever see the masked text.
 *
 * Works on bytes: output arrives in arbitrary chunks, which may cut a value (or a UTF-8
 * character) anywhere, and the patterns are byte strings.
 */

export const MASK = '***';
const MASK_BYTES = Buffer.from(MASK);

/**
 * Values (after trimming surrounding whitespace) shorter than this are not masked, nor are
 * shorter lines of a multi-line value: masking every `ab` or `1` in a log would make it
 * unreadable while hiding little, since so short a value is guessable anyway. Cairn itself
 * still never logs them.
 */
export const MIN_MASKED_LENGTH = 4;

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d]);

function trim(value: Buffer): Buffer {
  let start = 0;
  let end = value.length;
  while (start < end && WHITESPACE.has(value[start]!)) start++;
  while (end > start && WHITESPACE.has(value[end - 1]!)) end--;
  return value.subarray(start, end);
}

// RFC 3986 unreserved characters stay as they are; `encodeURIComponent` also keeps !'()*.
const UNRESERVED = new Set(Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~'));
const URI_COMPONENT = new Set([...UNRESERVED, ...Buffer.from("!'()*")]);

function percentEncode(value: Buffer, keep: ReadonlySet<number>): Buffer {
  let text = '';
  for (const byte of value) text += keep.has(byte) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return Buffer.from(text, 'latin1');
}

/**
 * The value base64-encoded on its own (standard and URL-safe alphabets, with and without
 * padding), and the part of its encoding that stays the same wherever it sits in a longer
 * encoded stream: at each of the three byte alignments, the characters that depend on the
 * value's bits alone (so not the first 0, 2 or 3 characters, which mix in the preceding
 * bytes, nor a last one that mixes in the following byte).
 */
function base64Forms(value: Buffer): string[] {
  const standard = value.toString('base64');
  const url = value.toString('base64url');
  const forms = [standard, standard.replace(/=+$/, ''), url, url + '='.repeat((4 - (url.length % 4)) % 4)];
  for (const shift of [0, 1, 2]) {
    const shifted = Buffer.concat([Buffer.alloc(shift), value]);
    const skip = [0, 2, 3][shift]!;
    const whole = (shifted.length % 3) === 0;
    for (const encoded of [shifted.toString('base64').replace(/=+$/, ''), shifted.toString('base64url')]) {
      forms.push(encoded.slice(skip, whole ? encoded.length : encoded.length - 1));
    }
  }
  return forms;
}

/**
 * Every byte string to mask for these secret values, longest first:
 * - each value with surrounding whitespace trimmed (a secret file usually ends in a
 *   newline, and `$(cat file)` drops it; trimming keeps the log's line breaks);
 * - each line of a multi-line value, trimmed, so that printing part of it is caught;
 * - the base64 forms (see base64Forms) and the percent-encoded forms of the value, as it
 *   is and trimmed (`base64 < file` encodes the final newline too).
 * Values and lines under MIN_MASKED_LENGTH bytes, and forms under it, are left out.
 */
export function maskPatterns(values: Iterable<Uint8Array>): Buffer[] {
  const patterns = new Map<string, Buffer>();
  const add = (pattern: Buffer) => {
    if (pattern.length >= MIN_MASKED_LENGTH) patterns.set(pattern.toString('latin1'), pattern);
  };
  for (const raw of values) {
    const exact = Buffer.from(raw);
    const trimmed = trim(exact);
    if (trimmed.length < MIN_MASKED_LENGTH) continue;
    add(trimmed);
    let start = 0;
    for (let end = trimmed.indexOf(0x0a); end !== -1; start = end + 1, end = trimmed.indexOf(0x0a, start)) {
      add(trim(trimmed.subarray(start, end)));
    }
    if (start > 0) add(trim(trimmed.subarray(start)));
    for (const form of new Set([exact, trimmed])) {
      for (const encoded of base64Forms(form)) add(Buffer.from(encoded, 'latin1'));
      for (const keep of [UNRESERVED, URI_COMPONENT]) {
        const encoded = percentEncode(form, keep);
        if (!encoded.equals(form)) add(encoded);
      }
    }
  }
  return [...patterns.values()].sort((a, b) => b.length - a.length);
}

/**
 * Masks a byte stream against a fixed set of patterns. Every byte of every occurrence of a
 * pattern is hidden; overlapping occurrences (a secret inside another, two secrets sharing
 * bytes) become one `***`. Occurrences that only touch stay apart.
 */
export class SecretMasker {
  /** Longest first. */
  readonly patterns: readonly Buffer[];

  private constructor(patterns: Buffer[]) {
    this.patterns = patterns;
  }

  /** A masker for these values, or undefined when none of them is long enough to mask. */
  static for(values: Iterable<Uint8Array>): SecretMasker | undefined {
    const patterns = maskPatterns(values);
    return patterns.length === 0 ? undefined : new SecretMasker(patterns);
  }

  /** `data` masked as a whole. */
  mask(data: Uint8Array): Buffer {
    const out: Buffer[] = [];
    const stream = this.stream((chunk) => out.push(Buffer.from(chunk)));
    stream.write(data);
    stream.end();
    return Buffer.concat(out);
  }

  /**
   * A stream that passes masked output to `sink`, in order. A chunk may be a view of what
   * was written: a sink that keeps it must copy it (StepLog.write does).
   */
  stream(sink: (chunk: Buffer) => void): MaskingStream {
    return new MaskingStream(this.patterns, sink);
  }
}

/**
 * Masks output that arrives in chunks. At a chunk boundary it holds back only the tail
 * that could still become an occurrence (the longest tail that is a proper prefix of some
 * pattern, so at most the longest pattern's length - 1 bytes); the rest goes out at once,
 * and `end` flushes what is held. The result is the same however the input is cut.
 */
export class MaskingStream {
  /** Bytes not yet passed on: the start of a possible occurrence. */
  private held: Buffer = Buffer.alloc(0);
  /**
   * When an occurrence already shown as `***` runs into `held`, how many of its first
   * bytes it covers; -1 when none does. An occurrence overlapping them extends that `***`.
   */
  private covered = -1;
  private ended = false;

  constructor(
    private readonly patterns: readonly Buffer[],
    private readonly sink: (chunk: Buffer) => void,
  ) {}

  write(chunk: Uint8Array): void {
    if (this.ended) throw new Error('MaskingStream: write after end');
    if (chunk.length === 0) return;
    const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const data = this.held.length === 0 ? view : Buffer.concat([this.held, view]);
    this.emit(data, data.length - this.heldTail(data));
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.held.length > 0) this.emit(this.held, this.held.length);
    this.held = Buffer.alloc(0);
  }

  /** The length of the longest tail of `data` that is a proper prefix of some pattern. */
  private heldTail(data: Buffer): number {
    let hold = 0;
    for (const p of this.patterns) {
      // Only tails longer than the one already held can change the answer.
      const from = data.length - Math.min(p.length - 1, data.length);
      for (let at = data.indexOf(p[0]!, from); at !== -1 && data.length - at > hold; at = data.indexOf(p[0]!, at + 1)) {
        if (data.compare(p, 0, data.length - at, at) === 0) {
          hold = data.length - at;
          break;
        }
      }
    }
    return hold;
  }

  /** Passes on data[0, cut) masked, and keeps data[cut, end) for the next chunk. */
  private emit(data: Buffer, cut: number): void {
    const ranges = this.occurrences(data, cut);
    const parts: Buffer[] = [];
    let pos = 0;
    let covered = -1;
    for (const [start, end] of ranges) {
      if (start > pos) parts.push(data.subarray(pos, Math.min(start, cut)));
      // A range that began in an earlier chunk was shown as `***` there.
      if (!(start === 0 && this.covered >= 0)) parts.push(MASK_BYTES);
      pos = end;
      if (end > cut) covered = end - cut;
    }
    if (pos < cut) parts.push(data.subarray(pos, cut));
    this.covered = covered;
    // A copy: the caller may reuse the buffer it wrote.
    this.held = Buffer.from(data.subarray(cut));
    if (parts.length === 1) this.sink(parts[0]!);
    else if (parts.length > 1) this.sink(Buffer.concat(parts));
  }

  /**
   * The merged ranges of occurrences in `data` that start before `cut` (later ones are
   * found again with the next chunk), with the range carried over from the last chunk.
   */
  private occurrences(data: Buffer, cut: number): [number, number][] {
    const found: [number, number][] = [];
    if (this.covered >= 0) found.push([0, this.covered]);
    for (const p of this.patterns) {
      for (let at = data.indexOf(p); at !== -1 && at < cut; at = data.indexOf(p, at + 1)) found.push([at, at + p.length]);
    }
    if (found.length <= 1) return found;
    found.sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [found[0]!];
    for (const range of found.slice(1)) {
      const last = merged[merged.length - 1]!;
      if (range[0] < last[1]) last[1] = Math.max(last[1], range[1]);
      else merged.push(range);
    }
    return merged;
  }
}
