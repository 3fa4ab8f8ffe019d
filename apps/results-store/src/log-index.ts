/**
 * What a stored log keeps beside its text (the blob, which stays the raw log people
 * download): when each chunk was written, for the per-line times, and the step
 * boundaries the stream carried between the text (issue 12), for the folding. Stored as
 * compact JSON in `builds.log_index`:
 *
 *     {"v":1,"t":[byte,ms, Δbyte,Δms, ...],"s":[[byte,step], ...]}
 *
 * `t` pairs each chunk's first byte in the text with its time (epoch ms), each pair as
 * the difference from the one before; `s` places each boundary at the byte of the text
 * it came before. A build stored before the index has none, nor has an upload whose
 * manifest carried none (`logIndex`, checked against its log as it is stored): its log
 * renders as numbered lines, without times or folding.
 */
import { LogStep } from '@cairn/contracts';
import { z } from 'zod';
import type { LogPiece } from './view/log-sections.js';

const Offset = z.number().int().nonnegative();
/** The index as JSON (also what an upload's manifest may carry as `logIndex`). */
export const LogIndexJson = z.object({
  v: z.literal(1),
  t: z.array(z.number().int()).refine((t) => t.length % 2 === 0, 'holds pairs'),
  s: z.array(z.tuple([Offset, LogStep])),
});

export interface LogIndex {
  /** [first byte, epoch ms] of each chunk with text, in order. */
  readonly times: readonly (readonly [number, number])[];
  readonly steps: readonly (readonly [number, LogStep])[];
}

/** Builds the index of a log from its pieces in order, as they are joined into its text. */
export class LogIndexer {
  private bytes = 0;
  private readonly times: [number, number][] = [];
  private readonly steps: [number, LogStep][] = [];

  add(piece: LogPiece, at: number): void {
    if (piece.step) this.steps.push([this.bytes, piece.step]);
    if (piece.text === '') return;
    this.times.push([this.bytes, at]);
    this.bytes += Buffer.byteLength(piece.text);
  }

  encode(): string {
    const t: number[] = [];
    let last: readonly [number, number] = [0, 0];
    for (const pair of this.times) {
      t.push(pair[0] - last[0], pair[1] - last[1]);
      last = pair;
    }
    return JSON.stringify({ v: 1, t, s: this.steps });
  }
}

/** The index stored as `json` for a text of `bytes` bytes; a clear error naming `what` when it is not one. */
export function decodeLogIndex(json: string, bytes: number, what: string): LogIndex {
  let parsed;
  try {
    parsed = LogIndexJson.safeParse(JSON.parse(json));
  } catch (e) {
    throw new Error(`${what}: the log index is not JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (!parsed.success) throw new Error(`${what}: the log index is malformed: ${z.prettifyError(parsed.error)}`);
  const times: [number, number][] = [];
  let last: [number, number] = [0, 0];
  for (let i = 0; i < parsed.data.t.length; i += 2) {
    last = [last[0] + parsed.data.t[i]!, last[1] + parsed.data.t[i + 1]!];
    times.push(last);
  }
  const offsets = [...times.map(([b]) => b), ...parsed.data.s.map(([b]) => b)];
  const wrong = offsets.findIndex((b, i) => b < 0 || b > bytes || (i > 0 && i !== times.length && b < offsets[i - 1]!));
  if (wrong >= 0) throw new Error(`${what}: the log index places something at byte ${offsets[wrong]}, out of order or past the log's ${bytes} bytes`);
  return { times, steps: parsed.data.s };
}

/**
 * The pieces of `text` as the stream gave them (step boundaries between the text, each
 * piece with its time), for the sectioner: the stored page renders as the live one did.
 */
export function* replayLog(text: string, index: LogIndex | undefined): Iterable<{ piece: LogPiece; at?: number }> {
  if (!index) {
    yield { piece: { text } };
    return;
  }
  const bytes = Buffer.from(text, 'utf8');
  // Every place the text is cut: a chunk's start or a boundary (which comes first there).
  const cuts = [...new Set([...index.times.map(([b]) => b), ...index.steps.map(([b]) => b), bytes.length])].sort((a, b) => a - b);
  let step = 0;
  let time = -1;
  let from = 0;
  for (const cut of cuts) {
    if (cut > from) {
      while (time + 1 < index.times.length && index.times[time + 1]![0] <= from) time++;
      const at = index.times[time]?.[1];
      yield { piece: { text: bytes.toString('utf8', from, cut) }, ...(at === undefined ? {} : { at }) };
      from = cut;
    }
    while (step < index.steps.length && index.steps[step]![0] === cut) yield { piece: { text: '', step: index.steps[step++]![1] } };
  }
}
