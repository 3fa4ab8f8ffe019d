import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CancelledError, StepFailedError, type RunOptions } from './sandbox.js';

/**
 * Runs the process of one step for the jail and macOS drivers, which have no runtime of
 * their own to relay output: `argv` is started (through `/bin/sh -c 'exec "$@" 2>&1'`, so
 * that stdout and stderr share one pipe and keep their order), its output goes to
 * `onOutput` as it comes, and `options.signal` calls `stop`, whose job is to kill what
 * the step started (`jail -r`, `pkill -u`); the process started here is SIGKILLed after
 * it, in case `stop` could not reach it. Resolves on exit status 0; rejects with
 * CancelledError, StepFailedError, or the stdin source's error.
 *
 * Callers are the command modules (jail.ts, macos.ts): each external command still has
 * exactly one module that invokes it.
 */
export async function runStreaming(argv: readonly string[], options: RunOptions, stop: () => Promise<void>): Promise<void> {
  if (options.signal?.aborted) throw new CancelledError();
  const child = spawn('/bin/sh', ['-c', 'exec "$@" 2>&1', 'sh', ...argv], {
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'ignore'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  child.stdout!.on('data', (chunk: Buffer) => options.onOutput(chunk));
  const running = () => child.exitCode === null && child.signalCode === null;
  let killing: Promise<void> | undefined;
  const kill = () => {
    killing ??= stop()
      .catch(() => undefined)
      .then(() => {
        if (running()) child.kill('SIGKILL');
      });
  };
  const stopFeeding = new AbortController();
  const feeding = options.stdin === undefined ? Promise.resolve(undefined) : feed(child.stdin!, options.stdin, stopFeeding.signal);
  const inputFailure = feeding.then((failure) => {
    if (failure !== undefined) kill();
    return failure;
  });
  options.signal?.addEventListener('abort', kill, { once: true });
  if (options.signal?.aborted) kill();
  let result;
  try {
    result = await exited;
  } finally {
    options.signal?.removeEventListener('abort', kill);
    stopFeeding.abort();
  }
  const failure = await inputFailure;
  await killing;
  if (options.signal?.aborted) throw new CancelledError();
  if (failure !== undefined) throw failure;
  if (result.code !== 0) throw new StepFailedError(result.code, result.signal ?? undefined);
}

/**
 * Writes `source` to the command's stdin, then closes it. Resolves to the source's
 * error if it failed; a command that stops reading early is not an error.
 */
export async function feed(stdin: Writable, source: AsyncIterable<Uint8Array> | Uint8Array, signal: AbortSignal): Promise<unknown> {
  let failure: unknown;
  async function* chunks() {
    try {
      if (source instanceof Uint8Array) yield source;
      else yield* source;
    } catch (e) {
      failure = e;
      throw e;
    }
  }
  await pipeline(chunks(), stdin, { signal }).catch(() => undefined);
  return failure;
}
