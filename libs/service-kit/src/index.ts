export { Handles, handlersOf, type BusHandler, type HandlerMethod, type HandlesOptions, type MessageOf, type SubjectOf } from './bus-handlers.js';
export { Ops, OpsController, OpsModule, type CheckKind, type Health, type HealthCheck } from './ops.js';
export { BUS, startService, type RunningService, type ServiceOptions } from './bootstrap.js';
export { DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORTS, httpListenOf, ListenError, settleHttpListen, type HttpListen, type ServiceName } from './http-listen.js';
export { watchBusHealth } from './readiness.js';
export { serviceLogger, ServiceLogger, type LogFields } from './service-logger.js';
export { serveStandby, type StandbyServer } from './standby.js';
export { PARENT_PID_ENV, watchParent, type ParentWatchOptions } from './parent-watch.js';
