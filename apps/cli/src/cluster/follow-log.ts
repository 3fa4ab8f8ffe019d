/**
 * A job's log from the first byte, then live: the stored chunks come from the scheduler
 * page by page, the new ones straight off the bus; a chunk seen both ways is printed
 * once. Chunks are numbered per run of the job (attempt, seq), so a job that was
 * requeued after losing its worker shows the first run's log, then a separator line
 * that says why the run was lost (`--- attempt 2 (requeued: ...) ---`, the reason the
 * scheduler recorded), then the second run's log. Ends with the job's final state.
 * The scheduler's pages hold only chunks of the worker that ran each attempt; live
 * chunks are checked the same way (log-writers.ts), so another worker cannot write here.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { LogChunk, LogWriters, subjects, TERMINAL, type JobState, type JobStatus, type LogsPage, type Requeue, type RunHistory } from '@cairn/contracts';
import { request } from './connection.js';

type Position = readonly [attempt: number, seq: number];
const positionOf = (c: LogChunk): Position => [c.attempt, c.seq];
const after = (a: Position, b: Position) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
/** The chunk that may follow `last` with nothing missing in between. */
const follows = (c: LogChunk, last: Position) => (c.attempt === last[0] && c.seq === last[1] + 1) || (c.attempt > last[0] && c.seq === 1);

export async function* followLog(nc: NatsConnection, client: string, job: string, follow: boolean): AsyncGenerator<LogChunk, JobState | undefined> {
  const live: { chunk: LogChunk; subject: string }[] = [];
  let wake: (() => void) | undefined;
  // Subscribe before reading what is stored, so that nothing falls between the two.
  const sub = follow
    ? nc.subscribe(subjects.jobLog(client, job), {
        callback: (_e, msg) => {
          const parsed = LogChunk.safeParse(msg.json());
          if (parsed.success && parsed.data.job === job) live.push({ chunk: parsed.data, subject: msg.subject });
          wake?.();
        },
      })
    : undefined;
  const writers = new LogWriters(() => request<JobStatus>(nc, subjects.client(client, 'status'), { job }).catch(() => undefined));
  let last: Position = [0, 0];
  let cursor = 0;
  let state: JobState | undefined;
  const reasons = new Map<number, string>();
  const learn = (requeues: readonly Requeue[] | undefined) => {
    for (const r of requeues ?? []) reasons.set(r.attempt, r.reason);
  };
  const stored = async (): Promise<LogChunk[]> => {
    const out: LogChunk[] = [];
    for (;;) {
      const page = await request<LogsPage & RunHistory & { state: JobState }>(nc, subjects.client(client, 'logs'), { job, cursor });
      cursor = page.cursor;
      state = page.state;
      learn(page.requeues);
      writers.learn(client, page);
      out.push(...page.chunks);
      if (!page.more) return out;
    }
  };
  let shownAttempt = 1;
  let atLineStart = true;
  /** The line between two runs; the reason may be newer than the pages read so far. */
  const separator = async (c: LogChunk): Promise<LogChunk | undefined> => {
    if (c.attempt <= shownAttempt) return undefined;
    shownAttempt = c.attempt;
    if (!reasons.has(c.attempt - 1)) learn((await request<JobStatus>(nc, subjects.client(client, 'status'), { job }).catch(() => undefined))?.requeues);
    const why = reasons.get(c.attempt - 1);
    const text = `${atLineStart ? '' : '\n'}--- attempt ${c.attempt} (${why === undefined ? 'requeued' : `requeued: ${why}`}) ---\n`;
    return { job: c.job, attempt: c.attempt, seq: c.seq, text };
  };
  const shown = (c: LogChunk) => {
    if (c.text.length > 0) atLineStart = c.text.endsWith('\n');
    return c;
  };
  try {
    for (;;) {
      const fromStore = await stored();
      for (const c of fromStore) {
        if (!after(positionOf(c), last)) continue;
        last = positionOf(c);
        const line = await separator(c);
        if (line) yield shown(line);
        yield shown(c);
        if (c.end) return c.end;
      }
      if (!follow || (state !== undefined && TERMINAL.includes(state) && live.length === 0)) return state;
      // Live chunks until one is missing (then read the store again) or a quiet spell.
      for (;;) {
        if (live.length === 0) {
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, 2000);
          });
          wake = undefined;
          if (live.length === 0) break; // quiet: look at the store (and the job's state)
        }
        const { chunk: next, subject } = live.shift()!;
        if (!after(positionOf(next), last) || !(await writers.wrote(subject, next.attempt))) continue;
        if (!follows(next, last)) {
          live.unshift({ chunk: next, subject });
          break;
        }
        last = positionOf(next);
        const line = await separator(next);
        if (line) yield shown(line);
        yield shown(next);
        if (next.end) return next.end;
      }
    }
  } finally {
    sub?.unsubscribe();
  }
}
