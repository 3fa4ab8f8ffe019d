/**
 * The fixture of the service-kit tests that serve requests: a service started with
 * startService on a private nats-server, and a client connection to that server.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { connectBus } from '@cairn/contracts';
import { startService, type RunningService, type ServiceOptions } from '@cairn/service-kit';
import { startNats, type RunningNats } from '../../../test/support/nats.js';

export interface ServiceOnNats {
  readonly nats: RunningNats;
  readonly service: RunningService;
  readonly client: NatsConnection;
  /** Closes the client and the service, then stops the server. */
  close(): Promise<void>;
}

/** `env` is the service's beside CAIRN_NATS, which names the private server. */
export async function startServiceOnNats(name: string, module: ServiceOptions['module'], env: NodeJS.ProcessEnv = {}): Promise<ServiceOnNats> {
  const nats = await startNats();
  let service: RunningService | undefined;
  try {
    service = await startService({ name, module, env: { CAIRN_NATS: nats.url, ...env } });
    const client = await connectBus({ servers: nats.url, name: 'test' });
    const started = service;
    return {
      nats,
      service,
      client,
      async close() {
        await client.close();
        await started.close();
        await nats.stop();
      },
    };
  } catch (e) {
    await service?.close();
    await nats.stop();
    throw e;
  }
}
