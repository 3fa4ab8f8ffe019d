/**
 * Build logs on the CAIRN_LOGS stream, one subject per job
 * (`cairn.v1.logs.<client>.<job>`), chunks numbered 1, 2, 3... with `end` on the last.
 * A job requeued after a lost worker logs again from 1 under the next `attempt`; the
 * later attempt's log replaces the earlier one.
 * Two readers: `tailLog` follows a running build as chunks arrive (for the live page),
 * and `readStoredLog` collects what the stream holds for a finished build so that the
 * store can keep the log after the stream has aged it out.
 */
import { LogChunk, streams, subjects } from '@cairn/contracts';
import { DeliverPolicy, jetstream, jetstreamManager, type Consumer, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

export interface TailOptions {
  readonly signal?: AbortSignal;
  /** The client that submitted the job; `*` when not known (a build seen only by its ID). */
  readonly client?: string;
}

/**
 * Every chunk of `job` from the first, then the live ones, each once, until the chunk
 * marked `end` or until `signal` aborts. Chunks of an attempt older than one already
 * seen are skipped; the first chunk of a newer attempt tells the reader to start over
 * (its `attempt` is higher than the previous chunk's). An ordered consumer, deleted when
 * the reader stops; should that delete be lost (the process killed, NATS unreachable),
 * the server drops it after INACTIVE_MS without a pull.
 */
export async function* tailLog(nc: NatsConnection, job: string, options: TailOptions = {}): AsyncIterable<LogChunk> {
  const consumer = await jetstream(nc).consumers.get(streams.logs.name, {
    filter_subjects: subjects.log(options.client ?? '*', job),
    deliver_policy: DeliverPolicy.All,
    inactive_threshold: INACTIVE_MS,
  });
  const messages = await consumer.consume({ max_messages: 256 }).catch(async (e: unknown) => {
    await dropConsumer(consumer);
    throw e;
  });
  const stop = () => void messages.close();
  options.signal?.addEventListener('abort', stop, { once: true });
  let attempt = 0;
  const seen = new Set<number>();
  try {
    if (options.signal?.aborted) return;
    for await (const m of messages) {
      const chunk = parseChunk(m, job);
      if (!chunk || chunk.attempt < attempt) continue;
      if (chunk.attempt > attempt) {
        attempt = chunk.attempt;
        seen.clear();
      }
      if (seen.has(chunk.seq)) continue;
      seen.add(chunk.seq);
      yield chunk;
      if (chunk.end) return;
    }
  } finally {
    options.signal?.removeEventListener('abort', stop);
    await messages.close().catch(() => undefined);
    await dropConsumer(consumer);
  }
}

/**
 * How long the server keeps an ordered consumer nobody pulls from. The client library
 * takes this option in milliseconds (it converts to nanoseconds itself): 30_000_000_000
 * here once meant ~347 days, and every reader that went away left its consumer behind.
 */
export const INACTIVE_MS = 30_000;

/** Closing an ordered consumer's messages does not delete it on the server; this does. */
async function dropConsumer(consumer: Consumer): Promise<void> {
  await consumer.delete().catch(() => undefined);
}

export interface StoredLog {
  /** The log of the latest attempt. */
  readonly text: string;
  readonly attempt: number;
  /** Earlier attempts the stream also held (not in `text`). */
  readonly earlierAttempts: number[];
  /** The chunk marked `end` was among them. */
  readonly complete: boolean;
  readonly chunks: number;
}

/**
 * The log the stream holds for a finished job, in `seq` order. When the last stored
 * chunk is not the `end` one (the result overtook the log's tail), waits up to
 * `waitForEndMs` for it. Undefined when the stream holds nothing for the job.
 */
export async function readStoredLog(nc: NatsConnection, client: string, job: string, waitForEndMs = 2000): Promise<StoredLog | undefined> {
  const jsm = await jetstreamManager(nc);
  const subject = subjects.log(client, job);
  const deadline = Date.now() + waitForEndMs;
  let last = await jsm.streams.getMessage(streams.logs.name, { last_by_subj: subject });
  if (!last) return undefined;
  while (!isEnd(last.data) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    last = (await jsm.streams.getMessage(streams.logs.name, { last_by_subj: subject })) ?? last;
  }
  const lastSeq = last.seq;
  const consumer = await jetstream(nc).consumers.get(streams.logs.name, { filter_subjects: subject, deliver_policy: DeliverPolicy.All, inactive_threshold: INACTIVE_MS });
  const messages = await consumer.consume({ max_messages: 1024 }).catch(async (e: unknown) => {
    await dropConsumer(consumer);
    throw e;
  });
  const attempts = new Map<number, Map<number, LogChunk>>();
  try {
    for await (const m of messages) {
      const chunk = parseChunk(m, job);
      if (chunk) {
        const chunks = attempts.get(chunk.attempt) ?? new Map<number, LogChunk>();
        attempts.set(chunk.attempt, chunks);
        if (!chunks.has(chunk.seq)) chunks.set(chunk.seq, chunk);
      }
      if (m.seq >= lastSeq) break;
    }
  } finally {
    await messages.close().catch(() => undefined);
    await dropConsumer(consumer);
  }
  const numbers = [...attempts.keys()].sort((a, b) => a - b);
  const attempt = numbers[numbers.length - 1] ?? 1;
  const ordered = [...(attempts.get(attempt)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
  return {
    text: ordered.map((c) => c.text).join(''),
    attempt,
    earlierAttempts: numbers.slice(0, -1),
    complete: ordered.some((c) => c.end !== undefined),
    chunks: ordered.length,
  };
}

/** Whether the stream holds any chunk of `job` (whoever submitted it). */
export async function logExists(nc: NatsConnection, job: string): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(streams.logs.name, { subjects_filter: subjects.log('*', job) });
  return Object.keys(info.state.subjects ?? {}).length > 0;
}

function parseChunk(m: JsMsg, job: string): LogChunk | undefined {
  try {
    const parsed = LogChunk.safeParse(m.json());
    return parsed.success && parsed.data.job === job ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function isEnd(data: Uint8Array): boolean {
  try {
    return LogChunk.safeParse(JSON.parse(new TextDecoder().decode(data))).data?.end !== undefined;
  } catch {
    return false;
  }
}
