export { SchedulerModule } from './scheduler.module.js';
export { schedulerConfigFromEnv, type SchedulerServiceConfig } from './scheduler.service.js';
