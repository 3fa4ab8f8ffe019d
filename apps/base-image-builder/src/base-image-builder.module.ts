import { Inject, Module, type DynamicModule, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS, Ops, OpsModule } from '@cairn/service-kit';
import { BaseImageMetrics } from './base-image-metrics.js';
import { BaseImagesController } from './base-images.controller.js';
import { ClusterJobs } from './cluster-jobs.js';
import type { ImageRecords } from './image-records.js';
import type { Matrix } from './matrix/matrix.js';
import { Rebuilder, type RebuilderOptions } from './rebuilder.js';
import { RegistryPublisher } from './registry-publisher.js';

export interface BaseImageBuilderConfig {
  readonly matrix: Matrix;
  readonly records: ImageRecords;
  /** `http://host:port` of the registry images are published to and fetched from. */
  readonly registry: string;
  /** Also publish each image as ZFS dataset streams, made under this dataset (RegistryPublisher). */
  readonly zfsDataset?: string;
  readonly rebuilder: RebuilderOptions;
}

/** Starts the passes once the service is up, and stops them first when it goes down. */
class RebuilderLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(@Inject(Rebuilder) private readonly rebuilder: Rebuilder) {}
  onApplicationBootstrap(): void {
    this.rebuilder.start();
  }
  onApplicationShutdown(): void {
    this.rebuilder.stop();
  }
}

@Module({})
export class BaseImageBuilderModule {
  static forRoot(bus: NatsConnection, config: BaseImageBuilderConfig): DynamicModule {
    return {
      module: BaseImageBuilderModule,
      imports: [OpsModule],
      controllers: [BaseImagesController],
      providers: [
        { provide: BUS, useValue: bus },
        {
          provide: Rebuilder,
          inject: [Ops],
          useFactory: (ops: Ops) =>
            new Rebuilder(
              config.matrix,
              config.records,
              new ClusterJobs(bus),
              new RegistryPublisher(config.registry, { ...(config.zfsDataset ? { zfsDataset: config.zfsDataset } : {}) }),
              new BaseImageMetrics(ops.metrics),
              config.rebuilder,
            ),
        },
        RebuilderLifecycle,
      ],
    };
  }
}
