export { SchedulerCore, DEFAULT_CONFIG, SchedulerError, type Effect, type SchedulerConfig } from './core/scheduler-core.js';
export { FairQueue } from './core/fair-queue.js';
export { CacheAffinity } from './core/cache-affinity.js';
export type { JobRecord, WorkerRecord, SchedulerSettings } from './core/records.js';
export { schedulerModule } from './scheduler.module.js';
export { schedulerConfigFromEnv, type SchedulerServiceConfig } from './scheduler.service.js';
