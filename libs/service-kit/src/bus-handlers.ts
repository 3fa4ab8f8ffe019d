/**
 * A request handler on the bus is a method declared once, with its subject and its zod
 * schema:
 *
 *   @Handles(subjects.clientPattern('status'), JobRef, 'status')
 *   status({ job }: JobRef, client: string) { return this.scheduler.status(client, job); }
 *
 * It takes the validated message and the speaker (the client or worker its subject
 * names, the token NATS permissions pin), and returns a value or throws a RejectedError.
 * Whichever path brings the request, it goes through the handler's `dispatch`: parsed
 * (a message that does not match is `malformed`, naming the field), handled, and answered
 * with a Reply whatever happens. startService finds the handlers of every controller and
 * provider and serves them through Nest's NATS transport, or, for the hottest subjects
 * (`direct`), on the service's own bus connection (direct-transport.ts).
 */
import 'reflect-metadata';
import type { z } from 'zod';
import { identityOf, serve, type Reply } from '@cairn/contracts';

/** A subject, or, for subjects of one instance (a worker's own), a function of it. */
export type SubjectOf<I> = string | ((instance: I) => string);

export interface HandlesOptions<I> {
  /**
   * Served on the service's bus connection directly rather than through Nest's NATS
   * transport: no per-message routing, rxjs or second connection, which is about a tenth
   * of the scheduler's CPU per job (bench/scheduler-throughput.ts --profile).
   */
  readonly direct?: boolean;
  /**
   * Runs around the whole request, validation included, on either path: sees the raw
   * message and the reply (a check that must come before the schema, metrics of replies).
   */
  readonly around?: (instance: I, data: unknown, next: () => Promise<Reply<unknown>>) => Promise<Reply<unknown>>;
}

/** The message a schema validates, as a handler is given it. */
export type MessageOf<S extends z.ZodType> = z.infer<S>;

/** What a handler method is given: the validated message, who speaks, the subject it came on. */
export type HandlerMethod<T> = (message: T, speaker: string, subject: string) => unknown;

interface Declaration {
  readonly key: string | symbol;
  readonly subject: SubjectOf<never>;
  readonly schema: z.ZodType;
  readonly what: string;
  readonly options: HandlesOptions<never>;
}

const DECLARED = Symbol('cairn:bus-handlers');

/** Declares the method the handler of `subject`; `what` names the request in rejections. */
export function Handles<S extends z.ZodType, I = object>(subject: SubjectOf<I>, schema: S, what: string, options: HandlesOptions<I> = {}) {
  return (target: I, key: string | symbol, _method: { readonly value?: HandlerMethod<MessageOf<S>> }): void => {
    const declared = (Reflect.getOwnMetadata(DECLARED, target as object) ?? []) as Declaration[];
    Reflect.defineMetadata(DECLARED, [...declared, { key, subject, schema, what, options }], target as object);
  };
}

/** One declared handler of one instance, ready to be served. */
export interface BusHandler {
  readonly subject: string;
  readonly direct: boolean;
  /** The whole request: the data as it came (possibly marked `__malformed`) and the subject it came on. */
  dispatch(data: unknown, subject: string): Promise<Reply<unknown>>;
}

/** The handlers `instance` declares with @Handles; none for anything else. */
export function handlersOf(instance: unknown): BusHandler[] {
  if (instance === null || typeof instance !== 'object') return [];
  const declared = (Reflect.getMetadata(DECLARED, instance) ?? []) as Declaration[];
  return declared.map(({ key, subject, schema, what, options }) => {
    const method = (instance as Record<string | symbol, HandlerMethod<unknown>>)[key]!;
    const handle = (data: unknown, on: string) => serve(schema, data, what, (message) => method.call(instance, message, identityOf(on) ?? '', on));
    const around = options.around as HandlesOptions<unknown>['around'];
    return {
      subject: typeof subject === 'string' ? subject : (subject as (i: unknown) => string)(instance),
      direct: options.direct ?? false,
      dispatch: around ? (data, on) => around(instance, data, () => handle(data, on)) : handle,
    };
  });
}
