import { parseSpec, type Spec } from '@cairn/spec';
import { displayName, readInput, type Io } from './io.js';

/** A spec file (or `-` for stdin), parsed; errors name the file, line and column. */
export async function readSpec(io: Io, path: string): Promise<{ text: string; spec: Spec }> {
  const text = await readInput(io, path, 'spec');
  return { text, spec: parseSpec(text, displayName(path)) };
}
