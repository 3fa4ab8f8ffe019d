export { Ops, OpsController, OpsModule, type HealthCheck } from './ops.js';
export { BUS, startService, type RunningService, type ServiceOptions } from './bootstrap.js';
