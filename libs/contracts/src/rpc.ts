/**
 * Request/reply over NATS in the envelope Nest's NATS transport speaks
 * (`{pattern, data, id}` out, `{response, err, isDisposed, id}` back), so that the
 * CLI, the worker-agent and the tests call the Nest services without Nest. The current
 * trace ID (trace.ts) goes along in a header.
 */
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { type Reply, reject } from './reply.js';
import { requesterOf } from './requester.js';
import { attempts } from './retry.js';
import { currentTrace, TRACE_HEADER } from './trace.js';

export interface CallOptions {
  /** Per attempt. */
  readonly timeoutMs?: number;
  /** Further attempts after a timeout or a missing responder (NATS restarting, a service starting). */
  readonly retries?: number;
}

export async function call<T>(nc: NatsConnection, subject: string, data: unknown, options: CallOptions = {}): Promise<Reply<T>> {
  const { timeoutMs = 5000, retries = 0 } = options;
  const id = randomUUID();
  const payload = JSON.stringify({ pattern: subject, data, id });
  const trace = currentTrace();
  let lastError = '';
  for await (const attempt of attempts({ retries })) {
    try {
      const msg = await requesterOf(nc).request(subject, payload, { timeoutMs, ...(trace === undefined ? {} : { headers: { [TRACE_HEADER]: trace } }) });
      const packet = msg.json<{ response?: Reply<T>; err?: unknown }>();
      if (packet.err !== undefined && packet.err !== null) {
        return reject('internal', `${subject}: ${typeof packet.err === 'string' ? packet.err : JSON.stringify(packet.err)}`);
      }
      if (packet.response === undefined) return reject('internal', `${subject}: empty reply`);
      // A service that is starting says so; like no responder at all, that is worth a retry.
      const response = packet.response;
      if (response.ok || response.error.code !== 'unavailable' || attempt === retries) return response;
      lastError = response.error.message;
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
    }
  }
  return reject('unavailable', `${subject}: no answer after ${retries + 1} attempt(s) (${lastError})`);
}

/** `call`, but a rejection becomes an exception for callers that cannot go on without the value. */
export async function callOrThrow<T>(nc: NatsConnection, subject: string, data: unknown, options?: CallOptions): Promise<T> {
  const reply = await call<T>(nc, subject, data, options);
  if (!reply.ok) throw new CallError(reply.error.code, reply.error.message);
  return reply.value;
}

export class CallError extends Error {
  override readonly name = 'CallError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const utf8 = new TextDecoder();

/**
 * Nest deserializer that never throws: a body that is not JSON, or not in the envelope,
 * still reaches the handler (marked `__malformed`) so the sender gets a rejection
 * instead of a silent timeout.
 */
export class SafeJsonDeserializer {
  deserialize(msg: { data: Uint8Array }, options?: { channel?: string; replyTo?: string }): { pattern: unknown; data: unknown; id?: string } {
    const channel = options?.channel;
    const hasReply = Boolean(options?.replyTo);
    let value: unknown;
    try {
      value = JSON.parse(utf8.decode(msg.data));
    } catch (e) {
      return { pattern: channel, data: { __malformed: `not JSON (${e instanceof Error ? e.message : String(e)})` }, ...(hasReply ? { id: 'malformed' } : {}) };
    }
    if (value !== null && typeof value === 'object' && 'pattern' in value && 'data' in value) {
      return value as { pattern: unknown; data: unknown; id?: string };
    }
    return { pattern: channel, data: { __malformed: 'not in the {pattern, data, id} envelope' }, ...(hasReply ? { id: 'malformed' } : {}) };
  }
}

const envelope = new SafeJsonDeserializer();

/**
 * The responder side for subjects served outside Nest (a worker's own `agent.<id>.*`
 * subjects): decodes the envelope `call` sends and answers in the same envelope.
 */
export async function answer<T>(
  msg: { data: Uint8Array; reply?: string; respond(data: string): boolean },
  handle: (data: unknown) => Promise<Reply<T>> | Reply<T>,
): Promise<void> {
  const packet = envelope.deserialize(msg, { channel: '', ...(msg.reply ? { replyTo: msg.reply } : {}) });
  const response = await handle(packet.data);
  if (msg.reply) msg.respond(JSON.stringify({ response, isDisposed: true, id: packet.id }));
}
