import type { JobState } from '@cairn/contracts';
import { SpecError } from '@cairn/spec';

/**
 * Exit codes mean the same thing for every command (the README's table):
 * 0 success; 1 a problem with the input or a failed build (the message says which);
 * 2 a usage error; 3 the cluster could not be reached; 130 interrupted, or a followed
 * job was cancelled.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, unavailable: 3, interrupted: 130 } as const;

/** A problem with the user's input (a bad spec, a missing file): exit 1, message on stderr. */
export class UserError extends Error {
  override readonly name = 'UserError';
}

/** A malformed flag value the option parser cannot see (`--store nonsense`): exit 2, like commander's own. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Ctrl-C or SIGTERM stopped the command: exit 130. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
}

/**
 * How an error ends a command: the one table. An error is recognised by its name, so that
 * commands that never build or connect do not load the engine or NATS to know its errors
 * (UnavailableError is cluster/connection.ts's). The engine's are failures it reports as
 * values (a failed step, a bad configuration, an image that cannot be had, a full store,
 * a cancelled build). An error not named here is a bug.
 */
const EXIT_OF_ERROR = new Map<string, number>([
  ['UserError', EXIT.failed],
  ['SpecError', EXIT.failed],
  ['BuildError', EXIT.failed],
  ['ConfigError', EXIT.failed],
  ['FetchError', EXIT.failed],
  ['OciImageError', EXIT.failed],
  ['StoreFullError', EXIT.failed],
  ['UsageError', EXIT.usage],
  ['UnavailableError', EXIT.unavailable],
  ['InterruptedError', EXIT.interrupted],
  ['CancelledError', EXIT.interrupted],
]);

/** The exit status `e` ends its command with; undefined for a bug (it keeps its stack trace). */
export function exitOfError(e: unknown): number | undefined {
  return e instanceof Error ? EXIT_OF_ERROR.get(e.name) : undefined;
}

/** How a followed job's end becomes the exit status; Ctrl-C, which stops following, is 130 like a cancelled job. */
export const EXIT_OF_JOB: Readonly<Record<JobState | 'interrupted', number>> = {
  succeeded: EXIT.ok,
  failed: EXIT.failed,
  cancelled: EXIT.interrupted,
  interrupted: EXIT.interrupted,
  queued: EXIT.ok,
  assigned: EXIT.ok,
  running: EXIT.ok,
};

/** The error as one readable line, or as JSON for scripts when --json was given. */
export function describeError(e: unknown, json: boolean): string {
  if (json) {
    const base = { message: e instanceof Error ? e.message : String(e) };
    const detail = e instanceof SpecError ? { reason: e.reason, line: e.pos.line, column: e.pos.column, file: e.file } : {};
    return JSON.stringify({ error: { ...base, ...detail } });
  }
  return `cairn: ${e instanceof Error ? e.message : String(e)}`;
}
