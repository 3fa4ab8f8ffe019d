import { Controller, Inject, Module, type DynamicModule } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { call, serve } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS, Ops, OpsModule, type RunningService } from '@cairn/service-kit';
import { startServiceOnNats, type ServiceOnNats } from './service-on-nats.js';

const Greeting = z.object({ name: z.string().min(1) });

@Controller()
class GreeterController {
  constructor(@Inject(BUS) private readonly bus: NatsConnection) {}

  @MessagePattern('test.greet')
  greet(@Payload() data: unknown) {
    return serve(Greeting, data, 'greet', ({ name }) => `hello ${name} via ${this.bus.info?.server_name ? 'nats' : 'nats'}`);
  }
}

@Module({})
class GreeterModule {
  static forRoot(bus: NatsConnection): DynamicModule {
    return { module: GreeterModule, imports: [OpsModule], controllers: [GreeterController], providers: [{ provide: BUS, useValue: bus }] };
  }
}

describe('a service started with startService', () => {
  let fixture: ServiceOnNats;
  let service: RunningService;
  let client: NatsConnection;

  beforeAll(async () => {
    fixture = await startServiceOnNats('greeter', (bus) => GreeterModule.forRoot(bus), { CAIRN_LOG_FORMAT: 'text' });
    ({ service, client } = fixture);
  });
  afterAll(async () => {
    await fixture?.close();
  });

  it('answers a well-formed request', async () => {
    expect(await call(client, 'test.greet', { name: 'ada' })).toEqual({ ok: true, value: 'hello ada via nats' });
  });

  it('rejects a message that does not match its schema, naming the field', async () => {
    const reply = await call(client, 'test.greet', { name: 42 });
    expect(reply.ok).toBe(false);
    if (!reply.ok) {
      expect(reply.error.code).toBe('malformed');
      expect(reply.error.message).toMatch(/^greet: name: /);
    }
  });

  it('answers bytes that are not JSON with a rejection instead of silence', async () => {
    const msg = await client.request('test.greet', new Uint8Array([0xff, 0x00, 0x7b]), { timeout: 5000 });
    const packet = msg.json<{ response: { ok: boolean; error: { code: string; message: string } } }>();
    expect(packet.response.ok).toBe(false);
    expect(packet.response.error.code).toBe('malformed');
    expect(packet.response.error.message).toContain('not JSON');
    // ...and the service still works afterwards.
    expect((await call(client, 'test.greet', { name: 'bo' })).ok).toBe(true);
  });

  it('serves /healthz and Prometheus /metrics', async () => {
    const health = await fetch(`${service.httpUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true, checks: { 'nats-open': 'ok', nats: 'ok', jetstream: 'ok' } });
    service.app.get(Ops).addCheck('disk', () => 'store is full');
    const sick = await fetch(`${service.httpUrl}/healthz`);
    expect(sick.status).toBe(503);
    expect(((await sick.json()) as { checks: Record<string, string> }).checks.disk).toBe('store is full');
    const metrics = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(metrics).toContain('process_cpu_user_seconds_total');
  });
});
