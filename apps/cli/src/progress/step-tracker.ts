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

/**
 * Turns the engine's log (headings, notes, output; child builds interleaved, each event
 * tagged with its stage) into steps that start, print and finish, so that every view
 * (plain, live terminal, JSON lines) reads the same account of the build. Steps are known
 * from the engine's marks, never from the text: a heading marked `step` starts a snapshot
 * step, and the note that carries the step's event (`done`) ends the one its stage
 * started last; the worker makes the log stream's step boundaries (`LogStep`, which the
 * results-store folds by) from the same marks (`step`, and `onStep`, told the same
 * event). Output or a heading that looks like a step is not one. The views tell a step's
 * end their own way (with its time), so that note is not passed on as a note.
 */
export class StepTracker {
  /** Every snapshot step that finished, in the order they finished (for --json). */
  readonly steps: Step[] = [];
  /** The op each stage is at (a context op too): the output and notes that follow are its. */
  private readonly current = new Map<string, Step>();
  /** The snapshot step each stage started last, until it finishes. */
  private readonly open = new Map<string, Step>();
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
      const step: Step = { stage, op: event.text, index: event.step ? ++this.count : 0, started: this.now() };
      if (event.step) this.open.set(stage, step);
      this.current.set(stage, step);
      this.events.started(step);
      return;
    }
    const step = event.done && this.open.get(stage);
    if (!event.done || !step) {
      this.events.note(this.current.get(stage), event.text);
      return;
    }
    this.open.delete(stage);
    step.id = event.done.id;
    step.cached = event.done.cached;
    step.ms = event.done.ms;
    this.steps.push(step);
    this.events.finished(step);
  };

  /** The snapshot steps started and not finished: what was running when a build failed. */
  running(): Step[] {
    return [...this.open.values()];
  }
}
