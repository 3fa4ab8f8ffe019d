import type { Io } from '../io.js';
import { colorsWanted } from '../terminal.js';
import { jsonView } from './json.js';
import { plainView } from './plain.js';
import { ttyView } from './tty.js';
import type { BuildView, ProgressMode } from './view.js';

export type { BuildView, ProgressMode } from './view.js';

export interface ViewChoice {
  readonly mode: ProgressMode;
  /** With --json the result goes to stdout, so the progress goes to stderr. */
  readonly toStderr: boolean;
  readonly noColor: boolean;
  readonly raw: boolean;
}

/**
 * The view `--progress` asks for. `auto` is the live view on a terminal and the plain
 * log elsewhere (a pipe, a file, CI), as docker buildx chooses.
 */
export function buildView(io: Io, total: number, choice: ViewChoice): BuildView {
  const stream = (choice.toStderr ? io.stderr : io.stdout) ?? {};
  const out = {
    write: choice.toStderr ? io.err : io.out,
    colors: choice.mode !== 'json' && colorsWanted({ noColor: choice.noColor, isTTY: stream.isTTY ?? false }),
    raw: choice.raw,
    columns: stream.columns || 80,
  };
  const mode = choice.mode === 'auto' ? (stream.isTTY && process.env.TERM !== 'dumb' ? 'tty' : 'plain') : choice.mode;
  switch (mode) {
    case 'tty':
      return ttyView(out, total);
    case 'json':
      return jsonView(out, total);
    case 'quiet':
      return plainView({ ...out, write: () => undefined }, total);
    default:
      return plainView(out, total);
  }
}
