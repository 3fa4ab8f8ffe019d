#!/usr/bin/env node
/**
 * `node dist/main.js [--http-host H] [--http-port P]`: the base-image-builder. It keeps
 * the images of the matrix (infra/images/) published in the registry, rebuilding each on
 * its schedule when its inputs changed (rebuilder.ts). Its state is in the
 * `cairn-base-images` bucket, so replicas and restarts share it.
 * Env: CAIRN_NATS, CAIRN_NATS_USER/PASSWORD, CAIRN_HTTP_HOST/PORT (default 127.0.0.1:8084,
 * service-kit's http-listen.ts), CAIRN_IMAGES_DIR (default infra/images of this checkout),
 * CAIRN_REGISTRY (http://host:port, required), CAIRN_REPLICA_ID (default the host name),
 * CAIRN_MAX_REBUILDS (2), CAIRN_MAX_ATTEMPTS (3), CAIRN_RETRY_FIRST_MS (30000),
 * CAIRN_RETRY_MAX_MS (900000), CAIRN_CLAIM_TTL_MS (60000), CAIRN_RETENTION_DAYS (30),
 * CAIRN_SCHEDULES (1; 0 turns the cron schedules off), CAIRN_IMAGE_WEBHOOKS (comma-separated
 * http(s) URLs, none by default: each gets a signed JSON POST per tag when an image gets a
 * new digest and one when a build fails, kept in the bucket until delivered,
 * image-webhooks.ts), CAIRN_IMAGE_WEBHOOK_SECRET_FILE (a file holding the HMAC-SHA256 key
 * of the `x-cairn-signature` header; required with CAIRN_IMAGE_WEBHOOKS), CAIRN_BASE_IMAGE_ZFS
 * (POOL/DATASET: also publish every image as ZFS dataset streams, made there; docs/zfs.md).
 */
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { busFromEnv, connectBus } from '@cairn/contracts';
import { settleHttpListen, startService } from '@cairn/service-kit';
import { BaseImageBuilderModule } from './base-image-builder.module.js';
import { ImageWebhooks } from './image-webhooks.js';
import { ImageRecords } from './image-records.js';
import { loadMatrix } from './matrix/matrix.js';

const { env } = settleHttpListen('base-image-builder', process.argv.slice(2));
const say = (message: string) => console.log(JSON.stringify({ service: 'base-image-builder', message }));
const number = (name: string, fallback: number) => {
  const value = Number(env[name] ?? fallback);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number of 0 or more, not ${JSON.stringify(env[name])}`);
  return value;
};

const registry = env.CAIRN_REGISTRY;
if (!registry || !/^https?:\/\//.test(registry)) {
  console.error('base-image-builder: CAIRN_REGISTRY must name the registry to publish to, as http://host:port');
  process.exit(2);
}
const replica = env.CAIRN_REPLICA_ID ?? hostname();
const webhooks = await ImageWebhooks.fromEnv(env, replica, say).catch((e: unknown) => {
  console.error(`base-image-builder: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(2);
});
const matrix = await loadMatrix(env.CAIRN_IMAGES_DIR ?? fileURLToPath(new URL('../../../infra/images/', import.meta.url)));
const records = await ImageRecords.open(await connectBus(busFromEnv('base-image-builder-records', env)), say);
const service = await startService({
  name: 'base-image-builder',
  env,
  module: (bus) =>
    BaseImageBuilderModule.forRoot(bus, {
      matrix,
      records,
      registry,
      ...(env.CAIRN_BASE_IMAGE_ZFS ? { zfsDataset: env.CAIRN_BASE_IMAGE_ZFS } : {}),
      rebuilder: {
        policy: {
          maxInFlight: number('CAIRN_MAX_REBUILDS', 2),
          maxAttempts: number('CAIRN_MAX_ATTEMPTS', 3),
          backoff: { firstMs: number('CAIRN_RETRY_FIRST_MS', 30_000), maxMs: number('CAIRN_RETRY_MAX_MS', 900_000) },
        },
        replica,
        claimTtlMs: number('CAIRN_CLAIM_TTL_MS', 60_000),
        retentionMs: number('CAIRN_RETENTION_DAYS', 30) * 86_400_000,
        schedules: env.CAIRN_SCHEDULES !== '0',
        ...(webhooks ? { webhooks } : {}),
        log: say,
      },
    }),
});
say(`ready: ${matrix.images.length} images, registry ${registry}, http ${service.httpUrl}`);
