/**
 * What /livez and /readyz say about the bus. Ready: the connection is up (not
 * reconnecting) and, for a service that made them, every JetStream stream and bucket is
 * there (a NATS server that lost its store comes back empty). Live: the connection is
 * not closed for good (it reconnects forever otherwise, so closed means restart me).
 */
import { missingStreams } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Ops } from './ops.js';

export function watchBusHealth(bus: NatsConnection, ops: Ops, options: { readonly streams: boolean }): void {
  let down: string | undefined;
  void (async () => {
    for await (const status of bus.status()) {
      if (status.type === 'disconnect') down = `NATS connection lost (${status.server}); reconnecting`;
      else if (status.type === 'reconnecting') down ??= 'NATS connection lost; reconnecting';
      else if (status.type === 'reconnect') down = undefined;
    }
  })();
  ops.addCheck('nats-open', () => (bus.isClosed() ? 'NATS connection closed' : undefined), 'live');
  ops.addCheck('nats', () => down);
  if (!options.streams) return;
  ops.addCheck('jetstream', async () => {
    // Asking a server we are not connected to would only wait for the timeout.
    if (bus.isClosed() || down !== undefined) return 'NATS not connected';
    const missing = await missingStreams(bus);
    return missing.length === 0 ? undefined : `missing JetStream streams/buckets: ${missing.join(', ')}`;
  });
}
