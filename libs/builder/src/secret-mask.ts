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
const EMPTY = Buffer.alloc(0);

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
    const whole = shifted.length % 3 === 0;
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
 *
 * The output is scanned once, whatever the number of patterns, skipping ahead as
 * Wu-Manber's search does: a window as long as the shortest pattern slides along, and the
 * two bytes at its end say how far it may move without passing an occurrence (a table of
 * 64 K shifts, from each pattern's first window of bytes); only where it cannot move are
 * the patterns starting with the window's first three bytes compared. With secrets of a
 * few dozen bytes the window moves by tens of bytes at a time.
 */
export class SecretMasker {
  /** Longest first. */
  readonly patterns: readonly Buffer[];
  /** By the hash of their first three bytes: is there a pattern starting so? */
  readonly starts = new Uint8Array(1 << 16);
  /** Patterns by their first three bytes (as one number), longest first. */
  readonly byPrefix = new Map<number, Buffer[]>();
  /** Is there a pattern starting with this byte, with these two bytes? */
  readonly firstBytes = new Uint8Array(256);
  readonly firstPairs = new Uint8Array(1 << 16);
  /** The shortest pattern's length: the window. */
  readonly window: number;
  /** By the two bytes at the window's end: how far the window may move. */
  readonly shifts = new Uint8Array(1 << 16);

  private constructor(patterns: Buffer[]) {
    this.patterns = patterns;
    this.window = patterns[patterns.length - 1]!.length;
    const m = this.window;
    this.shifts.fill(Math.min(m - 1, 255));
    for (const p of patterns) {
      for (let j = 1; j < m; j++) {
        const block = (p[j - 1]! << 8) | p[j]!;
        this.shifts[block] = Math.min(this.shifts[block]!, m - 1 - j);
      }
      const prefix = (p[0]! << 16) | (p[1]! << 8) | p[2]!;
      this.starts[prefixHash(prefix)] = 1;
      const same = this.byPrefix.get(prefix);
      if (same) same.push(p);
      else this.byPrefix.set(prefix, [p]);
      this.firstBytes[p[0]!] = 1;
      this.firstPairs[(p[0]! << 8) | p[1]!] = 1;
    }
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
    return new MaskingStream(this, sink);
  }
}

function prefixHash(prefix: number): number {
  return Math.imul(prefix, 0x9e3779b1) >>> 16;
}

/**
 * Masks output that arrives in chunks. At a chunk boundary it holds back only the tail
 * that could still become an occurrence (from the first position where the rest of the
 * chunk is a proper prefix of some pattern, so at most the longest pattern's length - 1
 * bytes); the rest goes out at once, and `end` flushes what is held. The result is the
 * same however the input is cut.
 */
export class MaskingStream {
  /** Bytes not yet passed on: the start of a possible occurrence. */
  private held = EMPTY;
  /**
   * When an occurrence already shown as `***` runs into `held`, how many of its first
   * bytes it covers; -1 when none does. An occurrence overlapping them extends that `***`.
   */
  private covered = -1;
  private ended = false;

  constructor(
    private readonly masker: SecretMasker,
    private readonly sink: (chunk: Buffer) => void,
  ) {}

  write(chunk: Uint8Array): void {
    if (this.ended) throw new Error('MaskingStream: write after end');
    if (chunk.length === 0) return;
    const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.emit(this.held.length === 0 ? view : Buffer.concat([this.held, view]), false);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.held.length > 0 || this.covered >= 0) this.emit(this.held, true);
    this.held = EMPTY;
  }

  /**
   * Passes on `data` masked, up to where a pattern may begin that the data ends inside of
   * (unless `final`); keeps the rest for the next chunk.
   */
  private emit(data: Buffer, final: boolean): void {
    const { ranges, cut } = this.scan(data, final);
    const parts: Buffer[] = [];
    let pos = 0;
    let covered = -1;
    for (let i = 0; i < ranges.length; i += 2) {
      const start = ranges[i]!;
      const end = ranges[i + 1]!;
      if (start > pos) parts.push(data.subarray(pos, start));
      // A range that began in an earlier chunk was shown as `***` there.
      if (!(start === 0 && this.covered >= 0)) parts.push(MASK_BYTES);
      pos = end;
      if (end > cut) covered = end - cut;
    }
    if (pos < cut) parts.push(data.subarray(pos, cut));
    this.covered = covered;
    // A copy: the caller may reuse the buffer it wrote.
    this.held = cut === data.length ? EMPTY : Buffer.from(data.subarray(cut));
    if (parts.length === 1) this.sink(parts[0]!);
    else if (parts.length > 1) this.sink(Buffer.concat(parts));
  }

  /**
   * The occurrences in `data` (as merged [start, end) pairs, flat, the range carried over
   * from the last chunk first) before `cut`: the first position where `data` ends inside a
   * possible occurrence, or its length.
   */
  private scan(data: Buffer, final: boolean): { ranges: number[]; cut: number } {
    const { starts, byPrefix, firstBytes, firstPairs, shifts, window } = this.masker;
    const length = data.length;
    const ranges: number[] = this.covered >= 0 ? [0, this.covered] : [];
    let at = 0;
    while (at + window <= length) {
      const end = at + window - 1;
      const shift = shifts[(data[end - 1]! << 8) | data[end]!]!;
      if (shift > 0) {
        at += shift;
        continue;
      }
      const candidates = byPrefix.get((data[at]! << 16) | (data[at + 1]! << 8) | data[at + 2]!);
      for (const p of candidates ?? []) {
        if (at + p.length <= length) {
          if (data.compare(p, 3, p.length, at + 3, at + p.length) !== 0) continue;
          // Starts only grow: the range can only extend the last one.
          const last = ranges.length - 1;
          if (last > 0 && at < ranges[last]!) ranges[last] = Math.max(ranges[last]!, at + p.length);
          else ranges.push(at, at + p.length);
          break;
        }
        if (!final && data.compare(p, 3, length - at, at + 3, length) === 0) return { ranges, cut: at };
      }
      at++;
    }
    if (final) return { ranges, cut: length };
    // Too near the end for a whole window: does the rest begin some pattern? (The shifts
    // never pass such a position either: its bytes would be a pattern's first bytes.)
    for (; at < length; at++) {
      const rest = length - at;
      if (rest >= 3) {
        const prefix = (data[at]! << 16) | (data[at + 1]! << 8) | data[at + 2]!;
        if (starts[prefixHash(prefix)] === 0) continue;
        for (const p of byPrefix.get(prefix) ?? []) {
          if (data.compare(p, 3, rest, at + 3, length) === 0) return { ranges, cut: at };
        }
      } else if (rest === 2 ? firstPairs[(data[at]! << 8) | data[at + 1]!] === 1 : firstBytes[data[at]!] === 1) {
        return { ranges, cut: at };
      }
    }
    return { ranges, cut: length };
  }
}
