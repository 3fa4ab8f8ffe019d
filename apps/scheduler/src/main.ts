#!/usr/bin/env node
/**
 * The scheduler process. One runs per cluster: it keeps the queues in memory and every
 * change in the JetStream buckets, so a restart picks up where it stopped.
 * Env: CAIRN_NATS, CAIRN_NATS_USER/PASSWORD/INBOX, CAIRN_HTTP_PORT, CAIRN_SCHEDULER_KEY,
 * CAIRN_LEASE_TTL_MS, CAIRN_HEARTBEAT_MS, CAIRN_AFFINITY_WAIT_MS, CAIRN_MAX_ATTEMPTS.
 */
import { startService } from '@cairn/service-kit';
import { schedulerModule } from './scheduler.module.js';
import { schedulerConfigFromEnv } from './scheduler.service.js';

const service = await startService({ name: 'scheduler', module: schedulerModule(schedulerConfigFromEnv()), httpPort: 8082 });
console.log(JSON.stringify({ service: 'scheduler', ready: true, http: service.httpUrl }));
