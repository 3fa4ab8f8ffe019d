import type { Logger } from '@cairn/builder';
import type { Step } from './step-tracker.js';

/** How a build is shown: `cairn build --progress MODE` (and -q). */
export type ProgressMode = 'auto' | 'tty' | 'plain' | 'json' | 'quiet';

/** A view of one build: fed the engine's log, told how it ended. */
export interface BuildView {
  readonly log: Logger;
  /** The finished snapshot steps, for --json. */
  readonly steps: readonly Step[];
  succeeded(id: string, ms: number): void;
  failed(message: string, ms: number): void;
}

/** Where a view writes, and what it knows of the terminal. */
export interface ViewOutput {
  write(text: string): void;
  readonly colors: boolean;
  /** Keep every escape sequence of step output (--raw). */
  readonly raw: boolean;
  /** The terminal's width, for the live view. */
  readonly columns: number;
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)}s`;
