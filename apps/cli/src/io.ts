import { readFile } from 'node:fs/promises';
import { UserError } from './cli-error.js';

/** What a command knows of where its output goes: a terminal, and how wide. */
export interface OutputStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/** Where a command writes; tests pass buffers, `main` passes the process streams. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
  readonly stdout?: OutputStream;
  readonly stderr?: OutputStream;
}

/**
 * A reader that went away (`cairn df | head -1`) is not an error of the command's: the
 * rest of its output is dropped and the command ends as it would have.
 */
function quietOnEpipe(stream: NodeJS.WriteStream): (text: string) => void {
  let gone = false;
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    gone = true;
  });
  return (text) => {
    if (!gone) stream.write(text);
  };
}

export const processIo: Io = {
  out: quietOnEpipe(process.stdout),
  err: quietOnEpipe(process.stderr),
  stdout: process.stdout,
  stderr: process.stderr,
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
