import { Module, type DynamicModule } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS, OpsModule } from '@cairn/service-kit';
import { DirectHandlers } from './direct-handlers.js';
import { LogReader } from './log-reader.js';
import { LEADERSHIP, type Leadership } from './leadership.js';
import { SchedulerController } from './scheduler.controller.js';
import { SCHEDULER_CONFIG, SchedulerService, type SchedulerServiceConfig } from './scheduler.service.js';

export function schedulerModule(config: SchedulerServiceConfig, leadership?: Leadership) {
  return (bus: NatsConnection): DynamicModule => {
    @Module({})
    class SchedulerModule {}
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
        DirectHandlers,
      ],
    };
  };
}
