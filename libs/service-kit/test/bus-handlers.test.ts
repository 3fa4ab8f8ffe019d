import { Controller, Injectable, Module, type DynamicModule } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { call, RejectedError, reject, type Reply } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS, Handles, OpsModule } from '@cairn/service-kit';
import { startServiceOnNats, type ServiceOnNats } from './service-on-nats.js';

const Greeting = z.object({ name: z.string().min(1) });
type Greeting = z.infer<typeof Greeting>;

const seen: string[] = [];

@Controller()
class GreeterController {
  @Handles('cairn.v1.client.*.greet', Greeting, 'greet')
  greet({ name }: Greeting, speaker: string) {
    return `hello ${name}, said ${speaker}`;
  }

  @Handles('cairn.v1.sched.*.greet', Greeting, 'direct greet', { direct: true })
  greetDirect({ name }: Greeting, speaker: string) {
    if (name === 'nobody') throw new RejectedError('not-found', `no ${name} here`);
    return `hello ${name} directly, said ${speaker}`;
  }

  @Handles('test.counted', Greeting, 'counted', {
    around: async (_self, data, next) => {
      if (data === null) return reject('too-large', 'counted: checked before the schema');
      const reply = await next();
      seen.push(reply.ok ? 'ok' : reply.error.code);
      return reply;
    },
  })
  counted({ name }: Greeting) {
    return name.length;
  }
}

@Injectable()
class Station {
  readonly id = 's7';

  @Handles((station: Station) => `test.station.${station.id}`, Greeting, 'station', { direct: true })
  private hail({ name }: Greeting, _speaker: string, subject: string) {
    return `${name} on ${subject}`;
  }
}

@Module({})
class GreeterModule {
  static forRoot(bus: NatsConnection): DynamicModule {
    return { module: GreeterModule, imports: [OpsModule], controllers: [GreeterController], providers: [{ provide: BUS, useValue: bus }, Station] };
  }
}

describe('handlers declared with @Handles', () => {
  let fixture: ServiceOnNats;
  let client: NatsConnection;

  beforeAll(async () => {
    fixture = await startServiceOnNats('greeter', (bus) => GreeterModule.forRoot(bus), { CAIRN_LOG_FORMAT: 'text' });
    ({ client } = fixture);
  });
  afterAll(async () => {
    await fixture?.close();
  });

  it('are served through Nest, given the validated message and the speaker the subject names', async () => {
    expect(await call(client, 'cairn.v1.client.c1.greet', { name: 'ada' })).toEqual({ ok: true, value: 'hello ada, said c1' });
  });

  it('are served directly on the bus when declared direct, in the same envelope', async () => {
    expect(await call(client, 'cairn.v1.sched.w1.greet', { name: 'bo' })).toEqual({ ok: true, value: 'hello bo directly, said w1' });
  });

  it('reject a message that does not match the schema the same way on both paths', async () => {
    for (const [subject, what] of [
      ['cairn.v1.client.c1.greet', 'greet'],
      ['cairn.v1.sched.w1.greet', 'direct greet'],
    ] as const) {
      const reply = await call(client, subject, { name: 42 });
      expect(reply.ok).toBe(false);
      if (!reply.ok) {
        expect(reply.error.code).toBe('malformed');
        expect(reply.error.message).toMatch(new RegExp(`^${what}: name: `));
      }
      const raw = await client.request(subject, new Uint8Array([0xff, 0x00, 0x7b]), { timeout: 5000 });
      const packet = raw.json<{ response: Reply<unknown> }>();
      expect(packet.response.ok).toBe(false);
      if (!packet.response.ok) expect(packet.response.error.message).toContain('not JSON');
    }
  });

  it('turn a RejectedError into its rejection', async () => {
    expect(await call(client, 'cairn.v1.sched.w1.greet', { name: 'nobody' })).toEqual({ ok: false, error: { code: 'not-found', message: 'no nobody here' } });
  });

  it('serve a provider on a subject of its own instance', async () => {
    expect(await call(client, 'test.station.s7', { name: 'cy' })).toEqual({ ok: true, value: 'cy on test.station.s7' });
  });

  it('run `around` over the raw message and the reply, validation included', async () => {
    expect(await call(client, 'test.counted', null)).toEqual({ ok: false, error: { code: 'too-large', message: 'counted: checked before the schema' } });
    expect(await call(client, 'test.counted', { name: 'dee' })).toEqual({ ok: true, value: 3 });
    expect((await call(client, 'test.counted', {})).ok).toBe(false);
    expect(seen).toEqual(['ok', 'malformed']);
  });
});
