import { SpecError } from '@cairn/spec';

/**
 * Exit codes mean the same thing for every command (the README's table):
 * 0 success; 1 a problem with the input or a failed build (the message says which);
 * 2 a usage error; 3 the cluster could not be reached; 130 interrupted, or a followed
 * job was cancelled.
 */
export const EXIT = { ok: 0, userError: 1, usage: 2, unavailable: 3, interrupted: 130 } as const;

/** A problem with the user's input (a bad spec, a missing file): exit 1, message on stderr. */
export class UserError extends Error {
  override readonly name = 'UserError';
}

/** A malformed flag value the option parser cannot see (`--store nonsense`): exit 2, like commander's own. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The error as one readable line, or as JSON for scripts when --json was given. */
export function describeError(e: unknown, json: boolean): string {
  if (json) {
    const base = { message: e instanceof Error ? e.message : String(e) };
    const detail = e instanceof SpecError ? { reason: e.reason, line: e.pos.line, column: e.pos.column, file: e.file } : {};
    return JSON.stringify({ error: { ...base, ...detail } });
  }
  return `cairn: ${e instanceof Error ? e.message : String(e)}`;
}

/**
 * Failures the engine reports as values (a failed step, a bad configuration, an image that
 * cannot be had, a full store) end with their message and exit 1, not a stack trace. They
 * are recognised by name so that commands that never build do not load the engine.
 */
const REPORTED = new Set(['BuildError', 'ConfigError', 'FetchError', 'StoreFullError', 'CancelledError']);

export function isUserError(e: unknown): boolean {
  return e instanceof UserError || e instanceof SpecError || (e instanceof Error && REPORTED.has(e.name));
}
