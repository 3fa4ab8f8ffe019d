import { SpecError } from '@cairn/spec';

/** Exit codes mean the same thing for every command. */
export const EXIT = { ok: 0, userError: 1, usage: 2 } as const;

/** A problem with the user's input (a bad spec, a missing file): exit 1, message on stderr. */
export class UserError extends Error {
  override readonly name = 'UserError';
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

export function isUserError(e: unknown): boolean {
  return e instanceof UserError || e instanceof SpecError;
}
