/**
 * A job's log from the first byte, then live: the stored chunks come from the scheduler
 * page by page, the new ones straight off the bus; a chunk seen both ways is printed
 * once. Chunks are numbered per run of the job (attempt, seq), so a job that was
 * requeued after losing its worker shows the first run's log, then the second's.
 * Ends with the job's final state.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { LogChunk, subjects, TERMINAL, type JobState, type LogsPage } from '@cairn/contracts';
import { request } from './connection.js';

type Position = readonly [attempt: number, seq: number];
const positionOf = (c: LogChunk): Position => [c.attempt, c.seq];
const after = (a: Position, b: Position) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
/** The chunk that may follow `last` with nothing missing in between. */
const follows = (c: LogChunk, last: Position) => (c.attempt === last[0] && c.seq === last[1] + 1) || (c.attempt > last[0] && c.seq === 1);

export async function* followLog(nc: NatsConnection, client: string, job: string, follow: boolean): AsyncGenerator<LogChunk, JobState | undefined> {
  const live: LogChunk[] = [];
  let wake: (() => void) | undefined;
  // Subscribe before reading what is stored, so that nothing falls between the two.
  const sub = follow
    ? nc.subscribe(subjects.log(client, job), {
        callback: (_e, msg) => {
          const parsed = LogChunk.safeParse(msg.json());
          if (parsed.success) live.push(parsed.data);
          wake?.();
        },
      })
    : undefined;
  let last: Position = [0, 0];
  let cursor = 0;
  let state: JobState | undefined;
  const stored = async (): Promise<LogChunk[]> => {
    const out: LogChunk[] = [];
    for (;;) {
      const page = await request<LogsPage & { state: JobState }>(nc, subjects.client(client, 'logs'), { job, cursor });
      cursor = page.cursor;
      state = page.state;
      out.push(...page.chunks);
      if (!page.more) return out;
    }
  };
  try {
    for (;;) {
      const fromStore = await stored();
      for (const c of fromStore) {
        if (!after(positionOf(c), last)) continue;
        last = positionOf(c);
        yield c;
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
        const next = live.shift()!;
        if (!after(positionOf(next), last)) continue;
        if (!follows(next, last)) {
          live.unshift(next);
          break;
        }
        last = positionOf(next);
        yield next;
        if (next.end) return next.end;
      }
    }
  } finally {
    sub?.unsubscribe();
  }
}
