/**
 * Build logs on the CAIRN_LOGS stream, one subject per job and worker
 * (`cairn.v1.logs.<client>.<job>.<worker>`), chunks numbered 1, 2, 3... with `end` on
 * the last. A job requeued after a lost worker logs again from 1 under the next
 * `attempt`; the later attempt's log replaces the earlier one. A chunk counts only when
 * the worker in its subject ran its attempt (log-writers.ts): any other is dropped.
 * Two readers: `tailLog` follows a running build as chunks arrive (for the live page),
 * and `readStoredLog` collects what the stream holds for a finished build so that the
 * store can keep the log after the stream has aged it out.
 */
import { LogChunk, LogWriters, streams, subjects, type RunHistory } from '@cairn/contracts';
import { DeliverPolicy, jetstream, jetstreamManager, type Consumer, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { LogIndexer } from '../log-index.js';

export interface TailOptions {
  readonly signal?: AbortSignal;
  /** The client that submitted the job; `*` when not known (a build seen only by its ID). */
  readonly client?: string;
  /** Which workers ran the job's runs: the scheduler's status of the job, as `client` sees it. */
  readonly history: (client: string) => Promise<RunHistory | undefined>;
}

/** A chunk and when the stream took it (epoch ms): the time shown on its lines. */
export type TimedChunk = LogChunk & { readonly at: number };

export async function* tailLog(nc: NatsConnection, job: string, options: TailOptions): AsyncIterable<TimedChunk> {
  const writers = new LogWriters(options.history);
  const consumer = await jetstream(nc).consumers.get(streams.logs.name, {
    filter_subjects: subjects.jobLog(options.client ?? '*', job),
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
      if (!chunk || chunk.attempt < attempt || !(await writers.wrote(m.subject, chunk.attempt))) continue;
      if (chunk.attempt > attempt) {
        attempt = chunk.attempt;
        seen.clear();
      }
      if (seen.has(chunk.seq)) continue;
      seen.add(chunk.seq);
      yield { ...chunk, at: timeOf(m) };
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
  readonly text: string;
  /** Its chunks' times and step boundaries (log-index.ts), encoded. */
  readonly index: string;
  /** The chunk marked `end` was among them. */
  readonly complete: boolean;
  readonly chunks: number;
}

/**
 * The log of a finished job's last run as the stream holds it, in `seq` order: the chunks
 * of `attempt` on the subject of `worker`, the worker that ran it. When the last stored
 * chunk is not the `end` one (the result overtook the log's tail), waits up to
 * `waitForEndMs` for it. Undefined when the stream holds nothing of that worker's.
 */
export async function readStoredLog(
  nc: NatsConnection,
  run: { client: string; job: string; worker: string; attempt: number },
  waitForEndMs = 2000,
): Promise<StoredLog | undefined> {
  // Called for every result stored: the API check would be one more round trip each time.
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const { job, attempt } = run;
  const subject = subjects.log(run.client, job, run.worker);
  const deadline = Date.now() + waitForEndMs;
  let last = await jsm.streams.getMessage(streams.logs.name, { last_by_subj: subject });
  if (!last) return undefined;
  while (!isEnd(last.data) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    last = (await jsm.streams.getMessage(streams.logs.name, { last_by_subj: subject })) ?? last;
  }
  const lastSeq = last.seq;
  const consumer = await jetstream(nc).consumers.get(streams.logs.name, {
    filter_subjects: subject,
    deliver_policy: DeliverPolicy.All,
    inactive_threshold: INACTIVE_MS,
  });
  const messages = await consumer.consume({ max_messages: 1024 }).catch(async (e: unknown) => {
    await dropConsumer(consumer);
    throw e;
  });
  const chunks = new Map<number, TimedChunk>();
  try {
    for await (const m of messages) {
      const chunk = parseChunk(m, job);
      if (chunk?.attempt === attempt && !chunks.has(chunk.seq)) chunks.set(chunk.seq, { ...chunk, at: timeOf(m) });
      if (m.seq >= lastSeq) break;
    }
  } finally {
    await messages.close().catch(() => undefined);
    await dropConsumer(consumer);
  }
  const ordered = [...chunks.values()].sort((a, b) => a.seq - b.seq);
  const index = new LogIndexer();
  for (const chunk of ordered) index.add(chunk, chunk.at);
  return {
    text: ordered.map((c) => c.text).join(''),
    index: index.encode(),
    complete: ordered.some((c) => c.end !== undefined),
    chunks: ordered.length,
  };
}

/** Whether the stream holds any chunk of `job` (whoever submitted it). */
export async function logExists(nc: NatsConnection, job: string): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(streams.logs.name, { subjects_filter: subjects.jobLog('*', job) });
  return Object.keys(info.state.subjects ?? {}).length > 0;
}

/** When the stream took the message (epoch ms). */
const timeOf = (m: JsMsg) => Math.floor(Number(m.info.timestampNanos) / 1e6);

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
