/**
 * A trace ID follows one request through the services: `call` sends the current one in
 * the `Cairn-Trace` NATS header; service-kit runs each handler with the ID its request
 * carried (a new one when it carried none), so that the handler's own calls pass it on
 * and its log lines name it (service-kit's ServiceLogger adds `trace`). `cairn submit`
 * starts one per submission and prints it: grep the services' logs for it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import type { MsgHdrs } from '@nats-io/transport-node';

export const TRACE_HEADER = 'Cairn-Trace';

/** What a trace ID looks like (newTraceId makes 32 hex digits). */
export const TRACE_ID = /^[0-9a-f]{16,32}$/;
const current = new AsyncLocalStorage<string>();

export function newTraceId(): string {
  return randomBytes(16).toString('hex');
}

/** The trace ID of the work under way, if it has one. */
export function currentTrace(): string | undefined {
  return current.getStore();
}

/** Runs `work` (and everything it starts) under trace `id`. */
export function withTrace<T>(id: string, work: () => T): T {
  return current.run(id, work);
}

/** The trace ID a message's headers carry, when it is one (anything else is ignored, not trusted). */
export function traceOf(headers: MsgHdrs | undefined): string | undefined {
  const id = headers?.get(TRACE_HEADER);
  return id && TRACE_ID.test(id) ? id : undefined;
}
