import { parseSpec, specOfDockerfile, SpecError, type Spec } from '@cairn/spec';
import { displayName, readInput, type Io } from './io.js';

export type SpecFormat = 'sexp' | 'dockerfile';

/** A spec file (or `-` for stdin), parsed; errors name the file, line and column. */
export async function readSpec(io: Io, path: string): Promise<{ text: string; spec: Spec }> {
  const text = await readInput(io, path, 'spec');
  return { text, spec: parseSpecText(text, path) };
}

/** Spec text read from `path`, parsed as `format`; errors name the file, line and column. */
export function parseSpecText(text: string, path: string, format: SpecFormat = 'sexp'): Spec {
  return inSpecFile(path, () => (format === 'dockerfile' ? specOfDockerfile(text) : parseSpec(text)));
}

/**
 * Runs `body` on a spec read from `path`: a SpecError it throws names that file. Parsing
 * is not the only source of them (a BuildKit mount in `cairn dockerfile` is another), and
 * a bare `2:2:` leaves the user to guess which file is meant.
 */
export function inSpecFile<T>(path: string, body: () => T): T {
  try {
    return body();
  } catch (e) {
    if (e instanceof SpecError && e.file === undefined) throw e.inFile(displayName(path));
    throw e;
  }
}
