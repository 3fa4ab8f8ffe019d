/**
 * Starting a Cairn service: connect to NATS (retrying forever across server restarts),
 * make sure the JetStream streams exist, then run the Nest application with its NATS
 * handlers (request/reply in Nest's envelope, parsed by SafeJsonDeserializer so a
 * malformed message is answered, not dropped) and its HTTP side (/healthz, /metrics).
 * A service started by `cairn up` also stops when `cairn up` is gone (parent-watch.ts).
 */
import 'reflect-metadata';
import { ConsoleLogger, type DynamicModule, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Transport, type MicroserviceOptions } from '@nestjs/microservices';
import { busFromEnv, connectBus, ensureAll, SafeJsonDeserializer } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { Ops } from './ops.js';
import { watchParent } from './parent-watch.js';

export const BUS = Symbol('BUS');

export interface ServiceOptions {
  /** Also the NATS connection name and the log prefix. */
  readonly name: string;
  /** The service's root module, given the bus connection (provide it under BUS). */
  readonly module: (bus: NatsConnection) => DynamicModule;
  /** NATS queue group for the request handlers (replicas share the load). */
  readonly queue?: string;
  /** HTTP port for /healthz and /metrics (0 picks a free one); CAIRN_HTTP_PORT overrides. */
  readonly httpPort?: number;
  readonly env?: NodeJS.ProcessEnv;
}

export interface RunningService {
  readonly app: INestApplication;
  readonly bus: NatsConnection;
  readonly httpUrl: string;
  close(): Promise<void>;
}

export async function startService(options: ServiceOptions): Promise<RunningService> {
  const env = options.env ?? process.env;
  // First: connecting waits for NATS as long as it takes, and an orphan should not wait.
  const unwatchParent = watchParent({ name: options.name, env });
  const busOptions = busFromEnv(options.name, env);
  const bus = await connectBus(busOptions);
  const logger = new ConsoleLogger({ json: env.CAIRN_LOG_FORMAT !== 'text', prefix: options.name });
  try {
    await ensureAll(bus);
  } catch (e) {
    // A worker's NATS user may not create streams; the services make them.
    if (!/permission/i.test(String(e))) throw e;
    logger.warn(`not allowed to create JetStream streams here (${String(e)}); using those the services made`);
  }
  const app = await NestFactory.create(options.module(bus), { logger, abortOnError: false });
  app.connectMicroservice<MicroserviceOptions>({
    transport: Transport.NATS,
    options: {
      servers: busOptions.servers,
      name: `${options.name}-handlers`,
      ...(options.queue === undefined ? {} : { queue: options.queue }),
      ...(busOptions.user === undefined ? {} : { user: busOptions.user, pass: busOptions.pass }),
      ...(busOptions.inboxPrefix === undefined ? {} : { inboxPrefix: busOptions.inboxPrefix }),
      ...(busOptions.tlsCaFile === undefined ? {} : { tls: { caFile: busOptions.tlsCaFile } }),
      deserializer: new SafeJsonDeserializer(),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      waitOnFirstConnect: true,
    },
  });
  app.get(Ops).addCheck('nats', () => (bus.isClosed() ? 'NATS connection closed' : undefined));
  app.enableShutdownHooks();
  await app.startAllMicroservices();
  const port = Number(env.CAIRN_HTTP_PORT ?? options.httpPort ?? 0);
  await app.listen(port, env.CAIRN_HTTP_HOST ?? '127.0.0.1');
  const httpUrl = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return {
    app,
    bus,
    httpUrl,
    async close() {
      unwatchParent();
      await app.close();
      await bus.drain().catch(() => undefined);
    },
  };
}
