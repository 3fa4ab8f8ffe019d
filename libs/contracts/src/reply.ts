/**
 * Errors are values on the bus: every request is answered with `Reply<T>`, and a
 * rejection carries a code a program can switch on and a message a person can act on.
 */
import type { z } from 'zod';

export type ErrorCode =
  | 'malformed' // the message is not JSON or does not match its schema
  | 'invalid-spec' // the spec does not parse or validate (message has line:column)
  | 'unknown-pool'
  | 'too-large'
  | 'not-found'
  | 'forbidden'
  | 'conflict' // e.g. cancelling a finished job, a stale lease
  | 'unavailable' // a service the request needs did not answer
  | 'internal';

export interface Rejection {
  readonly code: ErrorCode;
  readonly message: string;
}
export type Reply<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: Rejection };

export const ok = <T>(value: T): Reply<T> => ({ ok: true, value });
export const reject = (code: ErrorCode, message: string): Reply<never> => ({ ok: false, error: { code, message } });

/** A rejection thrown inside a handler; `serve` turns it into a reply. */
export class RejectedError extends Error {
  override readonly name = 'RejectedError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Parses `data` with `schema`, naming every bad field and where it is. */
export function parseMessage<S extends z.ZodType>(schema: S, data: unknown, what: string): z.infer<S> {
  if (data !== null && typeof data === 'object' && '__malformed' in data) {
    throw new RejectedError('malformed', `${what}: ${String((data as { __malformed: unknown }).__malformed)}`);
  }
  const parsed = schema.safeParse(data);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(message)'}: ${i.message}`)
    .join('; ');
  throw new RejectedError('malformed', `${what}: ${problems}`);
}

/** Runs a handler over a validated message; whatever happens, the requester gets a Reply. */
export async function serve<S extends z.ZodType, T>(
  schema: S,
  data: unknown,
  what: string,
  handler: (message: z.infer<S>) => Promise<T> | T,
): Promise<Reply<T>> {
  try {
    return ok(await handler(parseMessage(schema, data, what)));
  } catch (e) {
    if (e instanceof RejectedError) return reject(e.code, e.message);
    return reject('internal', `${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
