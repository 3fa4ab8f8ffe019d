import { Module, type DynamicModule } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS, OpsModule } from '@cairn/service-kit';
import { LogReader } from './log-reader.js';
import { LEADERSHIP, type Leadership } from './leadership.js';
import { SchedulerController } from './scheduler.controller.js';
import { SCHEDULER_CONFIG, SchedulerService, type SchedulerServiceConfig } from './scheduler.service.js';

@Module({})
export class SchedulerModule {
  /** The service's root module over an open bus connection (see startService); without `leadership`, it leads alone. */
  static forRoot(bus: NatsConnection, config: SchedulerServiceConfig, leadership?: Leadership): DynamicModule {
    return {
      module: SchedulerModule,
      imports: [OpsModule],
      controllers: [SchedulerController],
      providers: [
        { provide: BUS, useValue: bus },
        { provide: SCHEDULER_CONFIG, useValue: config },
        { provide: LEADERSHIP, useValue: leadership ?? null },
        { provide: LogReader, useFactory: () => new LogReader(bus) },
        SchedulerService,
      ],
    };
  }
}
