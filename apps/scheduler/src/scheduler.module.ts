import { Module, type DynamicModule } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS, OpsModule } from '@cairn/service-kit';
import { DirectHandlers } from './direct-handlers.js';
import { LogReader } from './log-reader.js';
import { SchedulerController } from './scheduler.controller.js';
import { SCHEDULER_CONFIG, SchedulerService, type SchedulerServiceConfig } from './scheduler.service.js';

export function schedulerModule(config: SchedulerServiceConfig) {
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
        { provide: LogReader, useFactory: () => new LogReader(bus) },
        SchedulerService,
        DirectHandlers,
      ],
    };
  };
}
