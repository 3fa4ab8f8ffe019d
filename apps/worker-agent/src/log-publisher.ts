import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { LogEvent, Logger } from '@cairn/builder';
import { subjects, type JobState, type LogChunk } from '@cairn/contracts';
import type { Redactor } from './redactor.js';

export interface LogPublisherOptions {
  /** Output is batched for at most this long... */
  readonly flushMs?: number;
  /** ...or until this many characters are waiting. */
  readonly maxChunk?: number;
  /** Where to say that a chunk is taking long to be stored. */
  readonly warn?: (message: string) => void;
}

/**
 * Streams one job's build log into JetStream (`subjects.log(client, job)`, captured by
 * the CAIRN_LOGS stream) as LogChunks numbered 1, 2, 3..., so that a follower who joins
 * late replays the log from the start. Output is batched (about 50 ms or 16 KiB) and
 * every secret value is taken out before a chunk leaves. Chunks go out one at a time, in
 * order, each stored (acknowledged by JetStream) before the next; a publish that fails
 * (NATS restarting) is retried, with the same message ID so a chunk stored twice is
 * kept once.
 */
export class LogPublisher {
  private readonly js: JetStreamClient;
  private readonly subject: string;
  private readonly flushMs: number;
  private readonly maxChunk: number;
  private readonly decoder = new TextDecoder();
  private pending = '';
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private atLineStart = true;
  private stopped = false;
  private abandoned = false;
  private readonly warn: (message: string) => void;

  constructor(
    nc: NatsConnection,
    private readonly client: string,
    private readonly job: string,
    /** Part of each message ID: a later attempt of the same job is not taken for a duplicate. */
    private readonly lease: string,
    /** Which run of the job this is: followers order chunks by (attempt, seq). */
    private readonly attempt: number,
    private readonly redactor: Redactor,
    options: LogPublisherOptions = {},
  ) {
    this.js = jetstream(nc);
    this.subject = subjects.log(client, job);
    this.flushMs = options.flushMs ?? 50;
    this.maxChunk = options.maxChunk ?? 16 * 1024;
    this.warn = options.warn ?? (() => undefined);
  }

  /** The builder's log, rendered as `cairn build` renders it. */
  readonly log: Logger = (event: LogEvent) => {
    if (event.tag === 'output') {
      const text = this.decoder.decode(event.data, { stream: true });
      if (text.length) this.atLineStart = text.endsWith('\n');
      this.write(text);
      return;
    }
    const prefix = this.atLineStart ? '' : '\n';
    this.atLineStart = true;
    this.write(`${prefix}${event.text}\n`);
  };

  /** A line of the worker's own (e.g. why a job failed). */
  line(text: string): void {
    this.log({ tag: 'note', text });
  }

  write(text: string): void {
    if (this.stopped || text === '') return;
    this.pending += text;
    if (this.pending.length >= this.maxChunk) this.flush(false);
    else this.timer ??= setTimeout(() => this.flush(false), this.flushMs);
  }

  /** Publishes everything written so far and waits until it is stored. */
  async close(): Promise<void> {
    this.pending += this.decoder.decode();
    this.flush(true);
    await this.chain;
  }

  /** The last chunk: tells followers the job ended, and how. */
  async end(state: JobState): Promise<void> {
    await this.close();
    this.stopped = true;
    this.enqueue('', state);
    await this.chain;
  }

  /** Stops retrying; chunks not yet stored are given up (the agent is being torn down). */
  abandon(): void {
    this.stopped = true;
    this.abandoned = true;
    clearTimeout(this.timer);
  }

  private flush(final: boolean): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const redacted = this.redactor.redact(this.pending);
    const cut = final ? redacted.length : this.redactor.safeLength(redacted);
    this.pending = redacted.slice(cut);
    for (let at = 0; at < cut; at += this.maxChunk) this.enqueue(redacted.slice(at, Math.min(cut, at + this.maxChunk)));
    if (this.pending !== '' && !final) this.timer = setTimeout(() => this.flush(false), this.flushMs);
  }

  private enqueue(text: string, end?: JobState): void {
    const chunk: LogChunk = { job: this.job, seq: ++this.seq, attempt: this.attempt, text, ...(end === undefined ? {} : { end }) };
    this.chain = this.chain.then(() => this.publish(chunk));
  }

  private async publish(chunk: LogChunk): Promise<void> {
    const payload = JSON.stringify(chunk);
    const msgID = `${this.job}.${this.lease}.${chunk.seq}`;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.js.publish(this.subject, payload, { msgID, timeout: 5000 });
        return;
      } catch (e) {
        if (this.abandoned) return;
        if (attempt % 10 === 9) this.warn(`log chunk ${chunk.seq} of job ${this.job} (client ${this.client}) on ${this.subject}: still not stored: ${e instanceof Error ? e.message : String(e)}`);
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
  }
}
