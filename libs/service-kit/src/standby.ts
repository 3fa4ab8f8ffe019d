/**
 * The HTTP side of a process that waits its turn (a standby scheduler): it opens its port
 * at once, so that an orchestrator sees it live and ready (the standby is working as
 * meant; Kubernetes would otherwise hold a rollout on it for good) and an operator reads
 * `"role": "standby"`, with the state of its NATS connection. When the process takes
 * over it closes this and starts the service proper on the same address.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { NatsConnection } from '@nats-io/transport-node';
import type { HttpListen } from './http-listen.js';
import { Ops, type CheckKind } from './ops.js';
import { watchBusHealth } from './readiness.js';

export interface StandbyServer {
  readonly url: string;
  close(): Promise<void>;
}

export async function serveStandby(listen: HttpListen, bus: NatsConnection): Promise<StandbyServer> {
  const ops = new Ops();
  watchBusHealth(bus, ops, { streams: false });
  const answer = async (res: ServerResponse, kind: CheckKind) => {
    const health = await ops.health(kind);
    res.writeHead(health.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ...health, role: 'standby' }));
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const done = (e: unknown) => res.writeHead(500).end(String(e));
    if (path === '/livez') answer(res, 'live').catch(done);
    else if (path === '/readyz') answer(res, 'ready').catch(done);
    else if (path === '/metrics') ops.metrics.metrics().then((text) => res.writeHead(200, { 'content-type': ops.metrics.contentType }).end(text), done);
    else
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ role: 'standby', message: 'standing by; /livez, /readyz and /metrics only' }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : listen.port;
  return {
    url: `http://${listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
