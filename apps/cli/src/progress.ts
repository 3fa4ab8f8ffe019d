import type { LogEvent } from '@cairn/builder';
import type { Io } from './io.js';

/**
 * Shows a build as it happens: each op heading as `[n/N] heading`, the step's output
 * streamed beneath it, the engine's notes, and the time each step took. It also keeps
 * the record of steps that `--json` reports at the end.
 */
export interface StepRecord {
  op: string;
  id?: string;
  cached?: boolean;
  ms: number;
}

export class Progress {
  readonly steps: StepRecord[] = [];
  private current: StepRecord | undefined;
  private started = Date.now();
  private count = 0;
  private atLineStart = true;

  constructor(
    private readonly io: Io,
    private readonly total: number,
    /** With --json, the log goes to stderr and stdout is kept for the result. */
    private readonly toStderr: boolean,
  ) {}

  readonly log = (event: LogEvent): void => {
    const write = (text: string) => (this.toStderr ? this.io.err(text) : this.io.out(text));
    if (event.tag === 'output') {
      const text = Buffer.from(event.data).toString();
      write(text);
      if (text.length) this.atLineStart = text.endsWith('\n');
      return;
    }
    const prefix = this.atLineStart ? '' : '\n';
    this.atLineStart = true;
    if (event.tag === 'heading') {
      this.finishStep();
      const snapshot = /^\(from |^[^ ]*: \((run|copy) /.test(event.text);
      if (snapshot) this.count++;
      this.current = { op: event.text, ms: 0 };
      this.started = Date.now();
      write(`${prefix}${snapshot ? `[${this.count}/${this.total}] ` : ''}${event.text}\n`);
      return;
    }
    const saved = /^---> (saved as|using) "([0-9a-f]{64})"( from cache)?/.exec(event.text);
    if (saved && this.current) {
      this.current.id = saved[2];
      this.current.cached = saved[1] === 'using';
    }
    write(`${prefix}${event.text}${saved ? ` (${((Date.now() - this.started) / 1000).toFixed(2)}s)` : ''}\n`);
  };

  finishStep(): void {
    if (this.current?.id) {
      this.current.ms = Date.now() - this.started;
      this.steps.push(this.current);
    }
    this.current = undefined;
  }
}
