import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CancelledError, StepFailedError, type RunOptions } from './sandbox.js';

/**
 * Where one driver's step process differs from another's: what is started, the pipes it
 * gets beyond stdio, how the step is killed, and what is left to clean up once it exited.
 */
export interface StepProcess {
  /** The program and its arguments; it must send stderr to stdout, the one pipe read. */
  readonly argv: readonly [string, ...string[]];
  /** Pipes after stdin, stdout and stderr (fd 3 on), which this process holds open. */
  readonly extraPipes?: number;
  /**
   * Kills what the step started, on cancellation or when the stdin source fails; called
   * at most once, and awaited before the outcome is reported.
   */
  kill(child: ChildProcess, running: () => boolean): Promise<void>;
  /** Runs once the process has exited and `kill` has finished, before the outcome. */
  afterExit?(): Promise<void>;
}

/**
 * Runs the process of one step: its output goes to `onOutput` as it comes, `stdin` is
 * fed to it, and `options.signal` calls `step.kill`. Resolves on exit status 0; rejects
 * with CancelledError, StepFailedError, or the stdin source's error.
 */
export async function runStepProcess(step: StepProcess, options: RunOptions): Promise<void> {
  if (options.signal?.aborted) throw new CancelledError();
  const [file, ...args] = step.argv;
  const child = spawn(file, args, {
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'ignore', ...Array<'pipe'>(step.extraPipes ?? 0).fill('pipe')],
  });
  // 'close' comes after the output has been read to its end.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  child.stdout!.on('data', (chunk: Buffer) => options.onOutput(chunk));
  const running = () => child.exitCode === null && child.signalCode === null;
  let killing: Promise<void> | undefined;
  const kill = () => {
    killing ??= step.kill(child, running);
  };
  const stopFeeding = new AbortController();
  const feeding = options.stdin === undefined ? Promise.resolve(undefined) : feed(child.stdin!, options.stdin, stopFeeding.signal);
  // A stdin source that fails would leave the command with truncated input: stop it.
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
  await step.afterExit?.();
  if (options.signal?.aborted) throw new CancelledError();
  if (failure !== undefined) throw failure;
  if (result.code !== 0) throw new StepFailedError(result.code, result.signal ?? undefined);
}

/**
 * The step process of the jail and macOS drivers, which have no runtime of their own to
 * relay output: `argv` is started through `/bin/sh -c 'exec "$@" 2>&1'`, so that stdout
 * and stderr share one pipe and keep their order, and cancelling calls `stop`, whose job
 * is to kill what the step started (`jail -r`, `pkill -u`); the process started here is
 * SIGKILLed after it, in case `stop` could not reach it.
 *
 * Callers are the command modules (jail.ts, macos.ts): each external command still has
 * exactly one module that invokes it.
 */
export function runStreaming(argv: readonly string[], options: RunOptions, stop: () => Promise<void>): Promise<void> {
  return runStepProcess(
    {
      argv: ['/bin/sh', '-c', 'exec "$@" 2>&1', 'sh', ...argv],
      kill: async (child, running) => {
        await stop().catch(() => undefined);
        if (running()) child.kill('SIGKILL');
      },
    },
    options,
  );
}

/**
 * Writes `source` to the command's stdin, then closes it. Resolves to the source's
 * error if it failed; a command that stops reading early is not an error.
 */
async function feed(stdin: Writable, source: AsyncIterable<Uint8Array> | Uint8Array, signal: AbortSignal): Promise<unknown> {
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
