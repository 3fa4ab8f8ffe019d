/**
 * /livez and /readyz over a real nats-server: ready only while NATS is connected and the
 * JetStream streams are there; live throughout a NATS outage (reconnecting is not a
 * reason to restart); a standby's HTTP side; where the HTTP side listens.
 */
import { Module, type DynamicModule } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, streams } from '@cairn/contracts';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { DEFAULT_HTTP_PORTS, OpsModule, serveStandby, settleHttpListen, startService, type RunningService } from '@cairn/service-kit';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { freePort } from '../../../test/support/ports.js';

@Module({})
class EmptyModule {
  static forRoot(): DynamicModule {
    return { module: EmptyModule, imports: [OpsModule] };
  }
}

interface Probe {
  readonly status: number;
  readonly body: { ok: boolean; checks: Record<string, string>; role?: string };
}

async function probe(url: string): Promise<Probe> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Probe['body'] };
}

/** Probes `url` until `want` holds (a bound against hangs only). */
async function probeUntil(url: string, want: (p: Probe) => boolean, what: string): Promise<Probe> {
  const deadline = Date.now() + 30_000;
  let last: Probe | undefined;
  while (Date.now() < deadline) {
    last = await probe(url);
    if (want(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: still ${JSON.stringify(last)} after 30 s`);
}

describe('/livez and /readyz of a service', () => {
  let nats: RunningNats;
  let service: RunningService;

  beforeAll(async () => {
    nats = await startNats();
    service = await startService({
      name: 'probed',
      module: () => EmptyModule.forRoot(),
      env: { CAIRN_NATS: nats.url, CAIRN_LOG_FORMAT: 'text', CAIRN_HTTP_HOST: '127.0.0.1' },
    });
  });
  afterAll(async () => {
    await service?.close();
    await nats?.stop();
  });

  it('is live and ready with NATS connected and the streams made', async () => {
    expect(await probe(`${service.httpUrl}/livez`)).toEqual({ status: 200, body: { ok: true, checks: { 'nats-open': 'ok' } } });
    expect(await probe(`${service.httpUrl}/readyz`)).toEqual({ status: 200, body: { ok: true, checks: { 'nats-open': 'ok', nats: 'ok', jetstream: 'ok' } } });
  });

  it('is not ready while NATS is stopped, stays live, and is ready again once NATS is back', async () => {
    const restarted = nats.restart(4000);
    // A request in flight may fail before the client has seen the disconnect: wait for both.
    const down = await probeUntil(`${service.httpUrl}/readyz`, (p) => p.status === 503 && p.body.checks.nats !== 'ok', 'readyz while NATS is stopped');
    expect(down.body.checks.nats).toMatch(/NATS connection lost.*reconnecting/);
    expect(down.body.checks.jetstream).toBe('NATS not connected');
    expect((await probe(`${service.httpUrl}/livez`)).status).toBe(200);
    await restarted;
    const up = await probeUntil(`${service.httpUrl}/readyz`, (p) => p.status === 200, 'readyz after NATS restarted');
    expect(up.body.checks).toEqual({ 'nats-open': 'ok', nats: 'ok', jetstream: 'ok' });
  });

  it('is not ready when a stream is missing, and names it', async () => {
    const admin = await connectBus({ servers: nats.url, name: 'test-admin' });
    try {
      await (await jetstreamManager(admin)).streams.delete(streams.results.name);
      const sick = await probe(`${service.httpUrl}/readyz`);
      expect(sick.status).toBe(503);
      expect(sick.body.checks.jetstream).toBe(`missing JetStream streams/buckets: ${streams.results.name}`);
    } finally {
      await admin.close();
    }
  });
});

describe('a standby HTTP side', () => {
  let nats: RunningNats;
  let bus: NatsConnection;

  beforeAll(async () => {
    nats = await startNats();
    bus = await connectBus({ servers: nats.url, name: 'standby' });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  it('is live and ready, says "standby", and frees its port for the service proper', async () => {
    const port = await freePort();
    const standby = await serveStandby({ host: '127.0.0.1', port }, bus);
    try {
      expect(await probe(`${standby.url}/livez`)).toEqual({ status: 200, body: { ok: true, checks: { 'nats-open': 'ok' }, role: 'standby' } });
      expect(await probe(`${standby.url}/readyz`)).toEqual({ status: 200, body: { ok: true, checks: { 'nats-open': 'ok', nats: 'ok' }, role: 'standby' } });
      expect(await (await fetch(`${standby.url}/metrics`)).text()).toContain('process_cpu_user_seconds_total');
    } finally {
      await standby.close();
    }
    const service = await startService({
      name: 'leader',
      module: () => EmptyModule.forRoot(),
      env: { CAIRN_NATS: nats.url, CAIRN_LOG_FORMAT: 'text', CAIRN_HTTP_PORT: String(port) },
    });
    try {
      expect(service.httpUrl).toBe(`http://127.0.0.1:${port}`);
      expect((await probe(`${service.httpUrl}/readyz`)).body.role).toBeUndefined();
    } finally {
      await service.close();
    }
  });
});

describe('settleHttpListen', () => {
  it("defaults to 127.0.0.1 and the service's fixed port", () => {
    expect(settleHttpListen('scheduler', [], {}).listen).toEqual({ host: '127.0.0.1', port: 8082 });
    expect(DEFAULT_HTTP_PORTS).toEqual({ 'results-store': 8080, 'spec-compiler': 8081, scheduler: 8082, 'worker-agent': 8083, 'base-image-builder': 8084 });
  });

  it('takes the environment over the default and the flags over both, leaving other arguments', () => {
    const env = { CAIRN_HTTP_HOST: '0.0.0.0', CAIRN_HTTP_PORT: '9000' };
    expect(settleHttpListen('results-store', ['token', 'hash'], env)).toMatchObject({ args: ['token', 'hash'], listen: { host: '0.0.0.0', port: 9000 } });
    const settled = settleHttpListen('results-store', ['--http-port', '9001', 'serve', '--http-host=::'], env);
    expect(settled).toMatchObject({ args: ['serve'], listen: { host: '::', port: 9001 } });
    expect(settled.env).toMatchObject({ CAIRN_HTTP_HOST: '::', CAIRN_HTTP_PORT: '9001' });
  });

  it('refuses a port that is not one, naming the setting', () => {
    expect(() => settleHttpListen('scheduler', [], { CAIRN_HTTP_PORT: 'http' })).toThrow('CAIRN_HTTP_PORT="http": expected a port number 0-65535');
    expect(() => settleHttpListen('scheduler', ['--http-port', '70000'], {})).toThrow('CAIRN_HTTP_PORT="70000"');
    expect(() => settleHttpListen('scheduler', ['--http-port'], {})).toThrow('--http-port needs a value');
  });
});
