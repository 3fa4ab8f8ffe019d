import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { LogStep } from '@cairn/contracts';

export interface LogBacklogLimits {
  /** Bytes of waiting log held in memory; what comes after them goes to the spool. */
  readonly memoryBytes: number;
  /** Bytes the spool may hold; beyond them the oldest spooled log is dropped. */
  readonly spoolBytes: number;
}

/** One spool file; `read` of its `size` bytes were taken out already. */
interface Segment {
  readonly kind: 'segment';
  readonly file: string;
  readonly fd: number;
  size: number;
  read: number;
}

/** A step boundary waiting in the spool: text after it goes to a segment of its own. */
interface StepMark {
  readonly kind: 'step';
  readonly step: LogStep;
}

/** Log that is gone (spool full or unwritable): one line says so where it was. */
interface Gap {
  readonly kind: 'gap';
  bytes: number;
  readonly reasons: Set<string>;
}

/**
 * The text of one job's log that waits to be published, oldest first, with the step
 * boundaries between it (taken out on their own, never merged into text): up to
 * `memoryBytes` in memory, and whatever comes after them in spool files in a directory
 * of its own under `dir` (made when first needed, removed once it is empty again). So
 * a long NATS outage costs disk, not the worker's memory, and the order holds: once
 * text went to the spool, later text follows it there until the spool is read empty.
 *
 * The spool is a series of segment files so that its oldest part can be dropped
 * whole: past `spoolBytes`, the oldest segments go and a line saying how many bytes
 * were dropped, and why, takes their place. What stays is the start of the backlog
 * (memory) and its most recent end, which is where a failing build says why.
 *
 * Files are written and read synchronously: the builder's log callback is synchronous,
 * every piece is at most a log chunk, and a page-cache write of that takes microseconds;
 * in exchange no write can overtake another.
 */
export class LogBacklog {
  /** In memory, oldest first, from `memoryHead` on: always before anything spooled. */
  private memory: (string | LogStep)[] = [];
  private memoryHead = 0;
  private inMemory = 0;
  /** Everything after the memory, oldest first. */
  private readonly spool: (Segment | StepMark | Gap)[] = [];
  private spoolDir: string | undefined;
  private spooled = 0;
  private segmentsMade = 0;
  private readonly segmentBytes: number;
  /** Whether the text taken last ended a line: a drop notice starts on a line of its own. */
  private atLineStart = true;

  constructor(
    private readonly limits: LogBacklogLimits,
    /** The worker's scratch dir. */
    private readonly dir: string,
    /** Names the spool directory, `cairn-log-<name>-XXXXXX`. */
    private readonly name: string,
  ) {
    // Eight segments: dropping the oldest one keeps seven eighths of the spool's worth.
    this.segmentBytes = Math.max(64 * 1024, Math.ceil(limits.spoolBytes / 8));
  }

  /** Bytes waiting in memory and in the spool, and the spool directory while there is one. */
  get usage(): { memoryBytes: number; spoolBytes: number; spoolDir: string | undefined } {
    return { memoryBytes: this.inMemory, spoolBytes: this.spooled, spoolDir: this.spoolDir };
  }

  get empty(): boolean {
    return this.memoryHead === this.memory.length && this.spool.length === 0;
  }

  push(text: string): void {
    if (text === '') return;
    const bytes = Buffer.byteLength(text);
    if (this.spool.length === 0 && this.inMemory + bytes <= this.limits.memoryBytes) {
      this.memory.push(text);
      this.inMemory += bytes;
      return;
    }
    this.append(Buffer.from(text));
  }

  /** A step boundary after everything pushed so far. */
  pushStep(step: LogStep): void {
    if (this.spool.length === 0) this.memory.push(step);
    else this.spool.push({ kind: 'step', step });
  }

  /**
   * The oldest waiting text, at most `maxChars` of it, or the step boundary that comes
   * first; undefined when nothing waits.
   */
  take(maxChars: number): string | LogStep | undefined {
    const taken = this.memoryHead < this.memory.length ? this.takeFromMemory(maxChars) : this.takeFromSpool(maxChars);
    if (typeof taken === 'string' && taken) this.atLineStart = taken.endsWith('\n');
    return taken;
  }

  /** Forgets everything waiting and removes the spool. */
  dispose(): void {
    this.memory = [];
    this.memoryHead = 0;
    this.inMemory = 0;
    for (const part of this.spool.splice(0)) if (part.kind === 'segment') closeQuietly(part.fd);
    this.spooled = 0;
    this.removeSpoolDir();
  }

  private takeFromMemory(maxChars: number): string | LogStep {
    const head = this.memory[this.memoryHead]!;
    if (typeof head !== 'string') {
      this.memoryHead++;
      this.compactMemory();
      return head;
    }
    let text = '';
    while (this.memoryHead < this.memory.length && text.length < maxChars) {
      const piece = this.memory[this.memoryHead]!;
      if (typeof piece !== 'string') break;
      const room = maxChars - text.length;
      if (piece.length <= room) {
        text += piece;
        this.memoryHead++;
      } else {
        // Not between the two halves of a surrogate pair: each half alone is no character.
        const cut = isHighSurrogate(piece.charCodeAt(room - 1)) && room > 1 ? room - 1 : room;
        text += piece.slice(0, cut);
        this.memory[this.memoryHead] = piece.slice(cut);
        break;
      }
    }
    this.inMemory -= Buffer.byteLength(text);
    this.compactMemory();
    return text;
  }

  private compactMemory(): void {
    if (this.memoryHead === this.memory.length) {
      this.memory = [];
      this.memoryHead = 0;
    }
  }

  private takeFromSpool(maxChars: number): string | LogStep | undefined {
    const part = this.spool[0];
    if (part === undefined) return undefined;
    if (part.kind === 'step') {
      this.spool.shift();
      return part.step;
    }
    if (part.kind === 'gap') {
      this.spool.shift();
      const why = [...part.reasons].join('; ');
      return `${this.atLineStart ? '' : '\n'}[cairn: ${part.bytes} bytes of log dropped here: ${why}]\n`;
    }
    const before = part.read;
    let text: string;
    try {
      text = readSegment(part, maxChars);
    } catch (e) {
      this.dropSegment(0, `the log spool could not be read (${errorText(e)})`);
      return this.take(maxChars);
    }
    this.spooled -= part.read - before;
    if (part.read === part.size) this.removeSegment(0);
    if (!this.spool.some((p) => p.kind === 'segment')) this.removeSpoolDir();
    // An empty segment (its file made, its write failed) holds nothing to publish.
    return text === '' ? this.take(maxChars) : text;
  }

  private append(data: Buffer): void {
    try {
      const segment = this.writableSegment();
      for (let at = 0; at < data.length;) at += writeSync(segment.fd, data, at, data.length - at, segment.size + at);
      segment.size += data.length;
      this.spooled += data.length;
    } catch (e) {
      // No disk to spill to: the text is lost, and the log says so where it would have been.
      this.addGap(this.spool.length, data.length, `the log spool in ${this.dir} could not be written (${errorText(e)})`);
      return;
    }
    while (this.spooled > this.limits.spoolBytes) {
      const oldest = this.spool.findIndex((p) => p.kind === 'segment');
      // The segment being written stays: the newest log is the last to go.
      if (oldest === this.lastSegmentIndex()) break;
      this.dropSegment(oldest, `NATS was unreachable for too long and this job's log spool reached its limit of ${this.limits.spoolBytes} bytes`);
    }
  }

  private lastSegmentIndex(): number {
    return this.spool.findLastIndex((p) => p.kind === 'segment');
  }

  private writableSegment(): Segment {
    const last = this.spool.at(-1);
    if (last?.kind === 'segment' && last.size < this.segmentBytes) return last;
    this.spoolDir ??= mkdtempSync(join(this.dir, `cairn-log-${this.name}-`));
    const file = join(this.spoolDir, `${String(++this.segmentsMade).padStart(6, '0')}.log`);
    const segment: Segment = { kind: 'segment', file, fd: openSync(file, 'w+', 0o600), size: 0, read: 0 };
    this.spool.push(segment);
    return segment;
  }

  /** Replaces the segment at `index` with a gap of its unread bytes. */
  private dropSegment(index: number, reason: string): void {
    const segment = this.spool[index] as Segment;
    const unread = segment.size - segment.read;
    this.spooled -= unread;
    this.removeSegment(index);
    this.addGap(index, unread, reason);
  }

  private removeSegment(index: number): void {
    const [segment] = this.spool.splice(index, 1) as [Segment];
    closeQuietly(segment.fd);
    // A file that cannot be removed now goes with the spool directory.
    ignoreErrors(() => rmSync(segment.file, { force: true }));
  }

  /** A gap at `index`, merged with one already next to it: one notice per hole in the log. */
  private addGap(index: number, bytes: number, reason: string): void {
    const neighbour = [this.spool[index - 1], this.spool[index]].find((p): p is Gap => p?.kind === 'gap');
    if (neighbour) {
      neighbour.bytes += bytes;
      neighbour.reasons.add(reason);
    } else {
      this.spool.splice(index, 0, { kind: 'gap', bytes, reasons: new Set([reason]) });
    }
  }

  private removeSpoolDir(): void {
    const dir = this.spoolDir;
    if (dir !== undefined) ignoreErrors(() => rmSync(dir, { recursive: true, force: true }));
    this.spoolDir = undefined;
  }
}

/** Up to `maxChars` characters from where `segment` was read to; advances it. */
function readSegment(segment: Segment, maxChars: number): string {
  // A character is at least one byte: `maxChars` bytes are at most `maxChars` characters.
  const buffer = Buffer.allocUnsafe(Math.min(maxChars, segment.size - segment.read));
  const length = readSync(segment.fd, buffer, 0, buffer.length, segment.read);
  if (length === 0 && buffer.length > 0) throw new Error(`${segment.file} is shorter than the ${segment.size} bytes written to it`);
  // Text went in whole, so only a cut inside a segment can split a character.
  const cut = segment.read + length < segment.size ? utf8Boundary(buffer, length) : length;
  segment.read += cut;
  return buffer.toString('utf8', 0, cut);
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/** The longest prefix of `buffer[0, length)` that does not end inside a UTF-8 character. */
export function utf8Boundary(buffer: Uint8Array, length: number): number {
  let start = length - 1;
  // Back over continuation bytes (10xxxxxx) to the lead byte of the last character.
  while (start > 0 && length - start < 4 && (buffer[start]! & 0xc0) === 0x80) start--;
  const lead = buffer[start]!;
  const size = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  const cut = start + size <= length ? length : start;
  return cut > 0 ? cut : length;
}

const closeQuietly = (fd: number) => ignoreErrors(() => closeSync(fd));

/** For cleanup that must not fail the log: the log goes on without it. */
function ignoreErrors(work: () => void): void {
  try {
    work();
  } catch {
    // nothing to do: what is left is removed with the spool directory, or by the OS
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
