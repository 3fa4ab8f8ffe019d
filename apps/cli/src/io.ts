import { readFile } from 'node:fs/promises';
import { UserError } from './cli-error.js';

/** Where a command writes; tests pass buffers, `main` passes the process streams. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
}

export const processIo: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

/** Reads a named input file (`-` is stdin) with an error that names it. */
export async function readInput(io: Io, path: string, what: string): Promise<string> {
  if (path === '-') return io.readStdin();
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : String(e);
    throw new UserError(`cannot read ${what} "${path}": ${why}`);
  }
}

/** The `K=V` form of --image-env and --build-arg. */
export function parsePair(text: string, flag: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UserError(`${flag} takes NAME=VALUE, not "${text}"`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** How an input is named in messages. */
export const displayName = (path: string) => (path === '-' ? '<stdin>' : path);
