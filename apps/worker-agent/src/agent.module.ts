import { Module, type DynamicModule } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Builder } from '@cairn/builder';
import { BUS, OpsModule } from '@cairn/service-kit';
import { AgentService } from './agent.service.js';
import type { AgentConfig } from './config.js';
import { AGENT_CONFIG, BUILDER } from './tokens.js';

@Module({})
export class AgentModule {
  /** The service's root module over an open bus connection (see startService). */
  static forRoot(bus: NatsConnection, config: AgentConfig, builder: Builder): DynamicModule {
    return {
      module: AgentModule,
      imports: [OpsModule],
      providers: [{ provide: BUS, useValue: bus }, { provide: AGENT_CONFIG, useValue: config }, { provide: BUILDER, useValue: builder }, AgentService],
      exports: [AgentService],
    };
  }
}
