import type { LogEvent } from '@cairn/builder';

/** One op of the build as the views show it. */
export interface Step {
  /** The child build's name, or '' for the main build. */
  readonly stage: string;
  /** The engine's heading, e.g. `/src: (run (shell "make"))`. */
  readonly op: string;
  /** n of `[n/N]` for snapshot steps (a base image, a run, a copy); 0 for context ops. */
  readonly index: number;
  readonly started: number;
  id?: string;
  cached?: boolean;
  ms?: number;
}

/** What a view is told, in order; `step` is the stage's current op (none before the first heading). */
export interface StepEvents {
  started(step: Step): void;
  output(step: Step | undefined, data: Uint8Array): void;
  finished(step: Step): void;
  note(step: Step | undefined, text: string): void;
}

const SNAPSHOT_HEADING = /^\(from |^[^ ]*: \((run|copy) /;
const SNAPSHOT_NOTE = /^---> (saved as|using) "([0-9a-f]{64})"( from cache)?/;

/**
 * Turns the engine's log (headings, notes, output; child builds interleaved, each event
 * tagged with its stage) into steps that start, print and finish, so that every view
 * (plain, live terminal, JSON lines) reads the same account of the build.
 */
export class StepTracker {
  /** Every snapshot step that finished, in the order they finished (for --json). */
  readonly steps: Step[] = [];
  private readonly current = new Map<string, Step>();
  private count = 0;

  constructor(
    readonly total: number,
    private readonly events: StepEvents,
    private readonly now: () => number = Date.now,
  ) {}

  readonly log = (event: LogEvent): void => {
    const stage = event.stage ?? '';
    if (event.tag === 'output') {
      this.events.output(this.current.get(stage), event.data);
      return;
    }
    if (event.tag === 'heading') {
      const index = SNAPSHOT_HEADING.test(event.text) ? ++this.count : 0;
      const step: Step = { stage, op: event.text, index, started: this.now() };
      this.current.set(stage, step);
      this.events.started(step);
      return;
    }
    const step = this.current.get(stage);
    const saved = SNAPSHOT_NOTE.exec(event.text);
    if (saved && step && step.id === undefined) {
      step.id = saved[2];
      step.cached = saved[1] === 'using';
      step.ms = this.now() - step.started;
      this.steps.push(step);
      this.events.finished(step);
      return;
    }
    this.events.note(step, event.text);
  };

  /** The snapshot steps started and not finished: what was running when a build failed. */
  running(): Step[] {
    return [...this.current.values()].filter((s) => s.index > 0 && s.id === undefined);
  }
}
