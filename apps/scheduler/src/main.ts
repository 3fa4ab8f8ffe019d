#!/usr/bin/env node
/**
 * The scheduler process. One leads per cluster: it keeps the queues in memory and every
 * change in the JetStream buckets, so a restart — or a standby taking over — picks up
 * where it stopped. A second scheduler started against the same NATS (with the same
 * CAIRN_SCHEDULER_KEY file, so that sealed secrets open) stands by until the leader
 * stops or falls silent (leadership.ts); a leader that loses the leadership exits 75 so
 * that its supervisor starts it again, as a standby. A standby serves /livez, /readyz
 * (both saying "role": "standby") and /metrics on the scheduler's address until it
 * leads, then the service proper takes the address over.
 * Flags: --http-host, --http-port (default 127.0.0.1:8082; see service-kit's http-listen.ts).
 * Env: CAIRN_NATS and its logins (contracts' busFromEnv), CAIRN_HTTP_HOST/PORT, CAIRN_SCHEDULER_KEY,
 * CAIRN_SCHEDULER_ID, CAIRN_JETSTREAM_REPLICAS, CAIRN_LEASE_TTL_MS, CAIRN_HEARTBEAT_MS, CAIRN_AFFINITY_WAIT_MS,
 * CAIRN_MAX_ATTEMPTS.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { busFromEnv, connectBus, jetStreamFromEnv } from '@cairn/contracts';
import { serveStandby, settleHttpListen, startService } from '@cairn/service-kit';
import { Leadership } from './leadership.js';
import { SchedulerModule } from './scheduler.module.js';
import { schedulerConfigFromEnv } from './scheduler.service.js';

const say = (level: 'log' | 'warn', message: string) => console.log(JSON.stringify({ service: 'scheduler', level, message }));
// Unique per process: the leadership's value tells this process's own writes from a rival's.
const holder = `${process.env.CAIRN_SCHEDULER_ID ?? hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
const { env, listen } = settleHttpListen('scheduler', process.argv.slice(2));
const bus = await connectBus(busFromEnv('scheduler-leadership', env));
const standby = await serveStandby(listen, bus);
const leadership = await Leadership.acquire(bus, holder, { log: (m) => say('log', m), warn: (m) => say('warn', m) }, undefined, jetStreamFromEnv(env).replicas);
await standby.close();
void leadership.lost.then((reason) => {
  say('warn', `stepping down: ${reason}; exiting (75) so that a supervisor starts this scheduler again, as a standby`);
  process.exit(75);
});
const config = schedulerConfigFromEnv(env);
const service = await startService({ name: 'scheduler', module: (bus) => SchedulerModule.forRoot(bus, config, leadership), env });
console.log(JSON.stringify({ service: 'scheduler', ready: true, http: service.httpUrl, leader: holder }));
