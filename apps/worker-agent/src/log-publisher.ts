import { tmpdir } from 'node:os';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { LogEvent, Logger, StepEvent } from '@cairn/builder';
import { attempts, subjects, type JobState, type LogChunk, type LogStep } from '@cairn/contracts';
import { LogBacklog } from './log-backlog.js';
import type { Redactor } from './redactor.js';

const MiB = 1024 * 1024;

export interface LogPublisherOptions {
  /** Output is batched for at most this long... */
  readonly flushMs?: number;
  /** ...or until this many characters are waiting. */
  readonly maxChunk?: number;
  /** Where to say that a chunk is taking long to be stored. */
  readonly warn?: (message: string) => void;
  /** Bytes of unpublished log kept in memory (8 MiB); what follows waits in a spool file. */
  readonly memoryLimit?: number;
  /** Bytes the spool may hold (256 MiB); beyond them its oldest part is dropped, and the log says so. */
  readonly spoolLimit?: number;
  /** Where the spool is made: the worker's scratch dir (the OS temp dir). */
  readonly spoolDir?: string;
}

/** Which run of which job the log is, and who writes it. */
export interface LogRun {
  readonly client: string;
  readonly job: string;
  /** This worker: the only name it may publish log chunks under. */
  readonly worker: string;
  /** Part of each message ID: a later attempt of the same job is not taken for a duplicate. */
  readonly lease: string;
  /** Which run of the job this is: followers order chunks by (attempt, seq). */
  readonly attempt: number;
}

/**
 * Streams one job's build log into JetStream (`subjects.log(client, job, worker)`, captured by
 * the CAIRN_LOGS stream) as LogChunks numbered 1, 2, 3..., so that a follower who joins
 * late replays the log from the start. Where a snapshot step starts and finishes goes
 * between the text as a chunk of its own (`LogChunk.step`), in order with it. Output is
 * batched (about 50 ms or 16 KiB) and every secret value is taken out before a chunk leaves. Chunks go out one at a time, in
 * order, each stored (acknowledged by JetStream) before the next; a publish that fails
 * (NATS restarting) is retried, with the same message ID so a chunk stored twice is
 * kept once. What waits meanwhile is a LogBacklog: bounded in memory, the rest spilled
 * to a spool file, so a chatty build during a long outage costs disk, not memory.
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
  /** Redacted text waiting to be published, oldest first. */
  private readonly backlog: LogBacklog;
  /** The loop publishing the backlog, while it runs. */
  private pumping: Promise<void> | undefined;
  private atLineStart = true;
  private stopped = false;
  private abandoned = false;
  private readonly warn: (message: string) => void;

  private readonly client: string;
  private readonly job: string;
  private readonly lease: string;
  private readonly attempt: number;

  constructor(
    nc: NatsConnection,
    run: LogRun,
    private readonly redactor: Redactor,
    options: LogPublisherOptions = {},
  ) {
    this.client = run.client;
    this.job = run.job;
    this.lease = run.lease;
    this.attempt = run.attempt;
    this.js = jetstream(nc);
    this.subject = subjects.log(run.client, run.job, run.worker);
    this.flushMs = options.flushMs ?? 50;
    this.maxChunk = options.maxChunk ?? 16 * 1024;
    this.warn = options.warn ?? (() => undefined);
    const limits = { memoryBytes: options.memoryLimit ?? 8 * MiB, spoolBytes: options.spoolLimit ?? 256 * MiB };
    this.backlog = new LogBacklog(limits, options.spoolDir ?? tmpdir(), run.job);
  }

  /** Bytes waiting to be published, in memory and in the spool (and where the spool is). */
  get waiting(): LogBacklog['usage'] {
    return this.backlog.usage;
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
    if (event.step) {
      // The step starts on a line of its own, and its heading is its first line.
      this.write(prefix);
      this.step({ t: 'started', heading: this.redactor.redact(event.text), stage: event.stage ?? '' });
      this.write(`${event.text}\n`);
      return;
    }
    this.write(`${prefix}${event.text}\n`);
  };

  /** The builder's `onStep`: the step whose heading came last in its stage is done. */
  readonly stepDone = (step: StepEvent): void => {
    this.step({ t: 'finished', stage: step.stage, id: step.id, cached: step.cached, ms: step.ms });
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

  private step(step: LogStep): void {
    if (this.stopped) return;
    // The text before the boundary goes out whole: a secret does not span an engine heading.
    this.flush(true);
    this.backlog.pushStep(step);
    this.pump();
  }

  /** Publishes everything written so far and waits until it is stored. */
  async close(): Promise<void> {
    this.pending += this.decoder.decode();
    this.flush(true);
    while (this.pumping) await this.pumping;
  }

  /** The last chunk: tells followers the job ended, and how. */
  async end(state: JobState): Promise<void> {
    await this.close();
    this.stopped = true;
    await this.publish({ job: this.job, seq: ++this.seq, attempt: this.attempt, text: '', end: state });
    this.backlog.dispose();
  }

  /** Stops retrying; chunks not yet stored are given up (the agent is being torn down). */
  abandon(): void {
    this.stopped = true;
    this.abandoned = true;
    clearTimeout(this.timer);
    this.backlog.dispose();
  }

  private flush(final: boolean): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const redacted = this.redactor.redact(this.pending);
    const cut = final ? redacted.length : this.redactor.safeLength(redacted);
    this.pending = redacted.slice(cut);
    // Only redacted text is kept, in memory or on disk.
    this.backlog.push(redacted.slice(0, cut));
    this.pump();
    if (this.pending !== '' && !final) this.timer = setTimeout(() => this.flush(false), this.flushMs);
  }

  /** Publishes the backlog chunk by chunk, unless that already runs. */
  private pump(): void {
    if (this.pumping || this.abandoned || this.backlog.empty) return;
    this.pumping = (async () => {
      for (let next = this.backlog.take(this.maxChunk); next !== undefined && !this.abandoned; next = this.backlog.take(this.maxChunk)) {
        const content = typeof next === 'string' ? { text: next } : { text: '', step: next };
        await this.publish({ job: this.job, seq: ++this.seq, attempt: this.attempt, ...content });
      }
    })()
      .catch((e: unknown) => {
        // A bug, not NATS (publish retries that): the log stops here rather than the worker.
        this.warn(`log of job ${this.job}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}: the rest of it is given up`);
        this.abandon();
      })
      .finally(() => {
        this.pumping = undefined;
        // Text pushed while the loop was finishing has no loop yet.
        this.pump();
      });
  }

  private async publish(chunk: LogChunk): Promise<void> {
    const payload = JSON.stringify(chunk);
    const msgID = `${this.job}.${this.lease}.${chunk.seq}`;
    for await (const attempt of attempts()) {
      try {
        await this.js.publish(this.subject, payload, { msgID, timeout: 5000 });
        return;
      } catch (e) {
        if (this.abandoned) return;
        if (attempt % 10 === 9)
          this.warn(
            `log chunk ${chunk.seq} of job ${this.job} (client ${this.client}) on ${this.subject}: still not stored: ${e instanceof Error ? e.message : String(e)}`,
          );
      }
    }
  }
}
