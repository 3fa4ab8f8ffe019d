import type { Position } from './sexp.js';

/**
 * The one error this library throws for bad input: a readable sentence tied to a
 * line and column. Anything else escaping the library is a bug.
 */
export class SpecError extends Error {
  override readonly name = 'SpecError';

  constructor(
    readonly reason: string,
    readonly pos: Position,
    readonly file?: string,
  ) {
    super(`${file ? `${file}:` : ''}${pos.line}:${pos.column}: ${reason}`);
  }

  /** The same error, reported against a named file. */
  inFile(file: string): SpecError {
    return new SpecError(this.reason, this.pos, file);
  }
}
