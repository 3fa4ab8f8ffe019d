/**
 * Starting a Cairn service: connect to NATS (retrying forever across server restarts),
 * make sure the JetStream streams exist, then run the Nest application with its bus
 * handlers (bus-handlers.ts: request/reply in Nest's envelope, parsed by
 * SafeJsonDeserializer so a malformed message is answered, not dropped) and its HTTP
 * side (/livez, /readyz, /metrics: ops.ts, readiness.ts) on the address http-listen.ts
 * settles. NATS logins and TLS are contracts' busFromEnv (user/password, creds, NKey
 * seed, client certificate), the same for both connections. A service started by `cairn up` also stops when `cairn up`
 * is gone (parent-watch.ts).
 */
import 'reflect-metadata';
import { Logger, Module, type DynamicModule, type INestApplication } from '@nestjs/common';
import { DiscoveryModule, DiscoveryService, NestFactory } from '@nestjs/core';
import { ServerNats, type NatsContext } from '@nestjs/microservices';
import {
  busFromEnv,
  connectBus,
  ensureAll,
  jetStreamFromEnv,
  natsConnectionOptions,
  newTraceId,
  SafeJsonDeserializer,
  throughBusRestarts,
  traceOf,
  withTrace,
} from '@cairn/contracts';
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { handlersOf, type BusHandler } from './bus-handlers.js';
import { DirectTransport } from './direct-transport.js';
import { httpListenOf } from './http-listen.js';
import { Ops } from './ops.js';
import { watchParent } from './parent-watch.js';
import { watchBusHealth } from './readiness.js';
import { serviceLogger, type LogFields } from './service-logger.js';

export const BUS = Symbol('BUS');

export interface ServiceOptions {
  /** Also the NATS connection name and the log prefix. */
  readonly name: string;
  /** The service's root module, given the bus connection (provide it under BUS). */
  readonly module: (bus: NatsConnection) => DynamicModule;
  /** NATS queue group for the request handlers (replicas share the load). */
  readonly queue?: string;
  /** HTTP port for /livez, /readyz and /metrics (0 picks a free one); CAIRN_HTTP_PORT overrides (see http-listen.ts). */
  readonly httpPort?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** On every log line besides `service` (a worker's `worker` and `pool`): service-logger.ts. */
  readonly logFields?: LogFields;
}

export interface RunningService {
  readonly app: INestApplication;
  readonly bus: NatsConnection;
  readonly httpUrl: string;
  close(): Promise<void>;
}

@Module({ imports: [DiscoveryModule] })
class ServiceRoot {}

/** The @Handles methods of every controller and provider the application built. */
function busHandlersOf(app: INestApplication): BusHandler[] {
  const discovery = app.get(DiscoveryService);
  return [...discovery.getControllers(), ...discovery.getProviders()]
    .filter((wrapper) => wrapper.isDependencyTreeStatic())
    .flatMap((wrapper) => handlersOf(wrapper.instance));
}

export async function startService(options: ServiceOptions): Promise<RunningService> {
  const env = options.env ?? process.env;
  // First: connecting waits for NATS as long as it takes, and an orphan should not wait.
  const unwatchParent = watchParent({ name: options.name, env });
  const busOptions = busFromEnv(options.name, env);
  const jetStream = jetStreamFromEnv(env);
  const bus = await connectBus(busOptions);
  const logger = serviceLogger(options.name, env, options.logFields);
  let madeStreams = true;
  try {
    await throughBusRestarts(
      'making the JetStream streams and buckets',
      () => ensureAll(bus, jetStream),
      (m) => logger.warn(m),
    );
  } catch (e) {
    // A worker's NATS user may not create streams; the services make them.
    if (!/permission/i.test(String(e))) throw e;
    logger.warn(`not allowed to create JetStream streams here (${String(e)}); using those the services made`);
    madeStreams = false;
  }
  const app = await NestFactory.create({ module: ServiceRoot, imports: [options.module(bus)] }, { logger, abortOnError: false });
  const nats = new ServerNats({
    ...natsConnectionOptions({ ...busOptions, name: `${options.name}-handlers` }),
    ...(options.queue === undefined ? {} : { queue: options.queue }),
    deserializer: new SafeJsonDeserializer(),
  });
  const handlers = busHandlersOf(app);
  for (const handler of handlers.filter((h) => !h.direct)) {
    // Under the request's trace ID (a new one when it has none): trace.ts in contracts.
    nats.addHandler(handler.subject, (data: unknown, ctx: NatsContext) =>
      withTrace(traceOf(ctx.getHeaders() as MsgHdrs | undefined) ?? newTraceId(), () => handler.dispatch(data, ctx.getSubject())),
    );
  }
  app.connectMicroservice({ strategy: nats });
  app.connectMicroservice({
    strategy: new DirectTransport(
      bus,
      handlers.filter((h) => h.direct),
      new Logger('DirectTransport'),
    ),
  });
  // Streams are checked only by a service that may make them: a worker may not list them.
  watchBusHealth(bus, app.get(Ops), { streams: madeStreams });
  app.enableShutdownHooks();
  await app.startAllMicroservices();
  const { host, port } = httpListenOf(env, options.httpPort ?? 0);
  await app.listen(port, host);
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
