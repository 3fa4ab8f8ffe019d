export { Ops, OpsController, OpsModule, type HealthCheck } from './ops.js';
export { BUS, startService, type RunningService, type ServiceOptions } from './bootstrap.js';
export { PARENT_PID_ENV, watchParent, type ParentWatchOptions } from './parent-watch.js';
