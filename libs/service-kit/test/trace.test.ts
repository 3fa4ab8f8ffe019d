/**
 * A trace ID through the services over a real NATS: `call` sends the current one in the
 * Cairn-Trace header; a handler (served through Nest or directly) runs under it, its own
 * calls pass it on, and its log lines carry it. A request without one gets a new one.
 */
import { Controller, Inject, Logger, Module, type DynamicModule } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { call, callOrThrow, currentTrace, withTrace } from '@cairn/contracts';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { BUS, Handles, OpsModule } from '@cairn/service-kit';
import { startServiceOnNats, type ServiceOnNats } from './service-on-nats.js';

const Empty = z.object({});

@Controller()
class TracedController {
  private readonly log = new Logger('Traced');
  constructor(@Inject(BUS) private readonly bus: NatsConnection) {}

  // Served through Nest's NATS transport; asks the direct one in turn.
  @Handles('test.outer', Empty, 'outer')
  async outer() {
    this.log.log('outer handling');
    return { outer: currentTrace(), inner: await callOrThrow<string>(this.bus, 'test.inner', {}) };
  }

  @Handles('test.inner', Empty, 'inner', { direct: true })
  inner() {
    return currentTrace();
  }
}

@Module({})
class TracedModule {
  static forRoot(bus: NatsConnection): DynamicModule {
    return { module: TracedModule, imports: [OpsModule], controllers: [TracedController], providers: [{ provide: BUS, useValue: bus }] };
  }
}

describe('trace IDs', () => {
  let fixture: ServiceOnNats;
  let client: NatsConnection;

  beforeAll(async () => {
    fixture = await startServiceOnNats('traced', (bus) => TracedModule.forRoot(bus));
    ({ client } = fixture);
  });
  afterAll(async () => {
    await fixture?.close();
  });
  afterEach(() => vi.restoreAllMocks());

  it('follow a request through a handler and the calls it makes, and show on its log lines', async () => {
    const write = vi.spyOn(process.stdout, 'write');
    const trace = '0123456789abcdef0123456789abcdef';
    const reply = await withTrace(trace, () => call(client, 'test.outer', {}));
    expect(reply).toEqual({ ok: true, value: { outer: trace, inner: trace } });
    const lines = write.mock.calls.map((args) => String(args[0])).filter((line) => line.includes('outer handling'));
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ service: 'traced', trace, message: 'outer handling' }),
    ]);
  });

  it('start with a new one for a request that carries none (or a malformed one)', async () => {
    const first = await call<{ outer: string; inner: string }>(client, 'test.outer', {});
    const second = await call<{ outer: string; inner: string }>(client, 'test.outer', {});
    if (!first.ok || !second.ok) throw new Error('the calls failed');
    expect(first.value.outer).toMatch(/^[0-9a-f]{32}$/);
    expect(first.value.inner).toBe(first.value.outer);
    expect(second.value.outer).not.toBe(first.value.outer);
    const h = headers();
    h.set('Cairn-Trace', 'not a trace; DROP TABLE');
    const raw = await client.request('test.inner', JSON.stringify({ pattern: 'test.inner', data: {}, id: '1' }), { timeout: 5000, headers: h });
    expect(raw.json<{ response: { value: string } }>().response.value).toMatch(/^[0-9a-f]{32}$/);
  });
});
