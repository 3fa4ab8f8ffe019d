import { Module, type DynamicModule } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS, OpsModule } from '@cairn/service-kit';
import { COMPILER_OPTIONS, CompilerController, type CompilerOptions } from './compiler.controller.js';
import { CompilerMetrics } from './compiler-metrics.js';

@Module({})
export class SpecCompilerModule {
  /** The service's root module over an open bus connection (see startService). */
  static forRoot(bus: NatsConnection, options: CompilerOptions): DynamicModule {
    return {
      module: SpecCompilerModule,
      imports: [OpsModule],
      controllers: [CompilerController],
      providers: [{ provide: BUS, useValue: bus }, { provide: COMPILER_OPTIONS, useValue: options }, CompilerMetrics],
    };
  }
}
