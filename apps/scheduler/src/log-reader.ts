/**
 * Reads a job's stored log chunks back from the logs stream, for `cairn logs` and for
 * followers that join late. Chunks are found by subject with the stream's "next message
 * for this subject" lookup, so no consumer is created per reader. Only the chunks of the
 * worker that ran each attempt are the job's log (log-writers.ts); others are skipped.
 */
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { LogChunk, parseLogSubject, streams, subjects, writerOf, type LogsPage, type RunHistory } from '@cairn/contracts';

export class LogReader {
  private jsm?: JetStreamManager;

  constructor(private readonly bus: NatsConnection) {}

  async page(client: string, job: string, history: RunHistory, cursor = 0, max = 500): Promise<LogsPage> {
    this.jsm ??= await jetstreamManager(this.bus);
    const subject = subjects.jobLog(client, job);
    const chunks: LogChunk[] = [];
    let seq = cursor + 1;
    while (chunks.length < max) {
      const msg = await this.jsm.direct.getMessage(streams.logs.name, { seq, next_by_subj: subject }).catch((e: unknown) => {
        if (String(e).includes('no message found') || String(e).includes('not found')) return null;
        throw e;
      });
      if (!msg) return { chunks, more: false, cursor: seq - 1 };
      seq = msg.seq + 1;
      const parsed = LogChunk.safeParse(msg.json());
      if (parsed.success && parsed.data.job === job && writerOf(history, parsed.data.attempt) === parseLogSubject(msg.subject)?.worker)
        chunks.push(parsed.data);
    }
    return { chunks, more: true, cursor: seq - 1 };
  }
}
