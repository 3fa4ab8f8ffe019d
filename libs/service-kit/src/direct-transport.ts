/**
 * The direct path of bus-handlers.ts as a Nest transport: the handlers declared `direct`
 * subscribed on the service's own bus connection, answered in the envelope `call` speaks.
 * As a transport, Nest starts it with the others and closes it after the
 * beforeApplicationShutdown hooks (a draining worker still hears cancel orders) and
 * before the onApplicationShutdown ones (nothing is handled once the service is down).
 */
import type { Logger } from '@nestjs/common';
import { Server, type CustomTransportStrategy } from '@nestjs/microservices';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { answer, newTraceId, traceOf, withTrace } from '@cairn/contracts';
import type { BusHandler } from './bus-handlers.js';

/** Nest also hands it every @MessagePattern (addHandler); the NATS transport serves those. */
export class DirectTransport extends Server implements CustomTransportStrategy {
  private readonly subscriptions: Subscription[] = [];

  constructor(
    private readonly bus: NatsConnection,
    private readonly handlers: readonly BusHandler[],
    private readonly log: Logger,
  ) {
    super();
  }

  listen(callback: () => void): void {
    for (const handler of this.handlers) {
      const sub = this.bus.subscribe(handler.subject, {
        callback: (err, msg) => {
          if (err) {
            this.log.warn(`subscription ${handler.subject} ended: ${err.message}`);
            return;
          }
          // Under the request's trace ID (a new one when it has none): trace.ts in contracts.
          withTrace(traceOf(msg.headers) ?? newTraceId(), () => answer(msg, (data) => handler.dispatch(data, msg.subject))).catch((e: unknown) =>
            this.log.error(`${msg.subject}: ${String(e)}`),
          );
        },
      });
      this.subscriptions.push(sub);
    }
    callback();
  }

  close(): void {
    for (const sub of this.subscriptions.splice(0)) sub.unsubscribe();
  }

  // The bus connection's status is the service's `nats` health check.
  on(): void {}

  unwrap<T>(): T {
    return this.bus as T;
  }
}
