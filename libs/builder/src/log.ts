/**
 * What a build reports as it goes: headings for ops, notes from the engine, step output.
 * `stage` is the child build's name ('' for the main build) once the engine has tagged it.
 * `step` marks the heading of a snapshot step (a base image, a run, a copy); `done`, on
 * the note that says how it ended (`---> saved as` / `---> using ... from cache`), is the
 * step's event, which `onStep` is told next: readers know steps from these, not from the
 * text of headings and notes.
 */
export type LogEvent =
  | { readonly tag: 'heading' | 'note'; readonly text: string; readonly stage?: string; readonly step?: true; readonly done?: StepEvent }
  | { readonly tag: 'output'; readonly data: Uint8Array; readonly stage?: string };

export type Logger = (event: LogEvent) => void;

export const heading = (text: string): LogEvent => ({ tag: 'heading', text });
/** The heading of a snapshot step: the step starts here. */
export const stepHeading = (text: string): LogEvent => ({ tag: 'heading', text, step: true });
export const note = (text: string): LogEvent => ({ tag: 'note', text });
/** The note that ends a snapshot step, carrying its event. */
export const stepDone = (text: string, done: StepEvent): LogEvent => ({ tag: 'note', text, done });

/**
 * One snapshot step, reported once it is done (`BuildOptions.onStep`), so that a service
 * can report step results without parsing the human-readable notes. It is a callback
 * beside the log rather than a log event so that log renderers need not know it.
 */
export interface StepEvent {
  /** The step ID: the snapshot it published or replayed. */
  readonly id: string;
  /** The op as one line, e.g. `(run (shell "make"))` or `(from busybox)`. */
  readonly op: string;
  /** The child build's name, or '' for the main build. */
  readonly stage: string;
  readonly cached: boolean;
  readonly ms: number;
}
