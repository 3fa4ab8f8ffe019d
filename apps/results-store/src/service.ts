/**
 * Starting the results-store: open (and migrate) the database and the blob store,
 * load the configured tokens, then run the Nest application on the bus.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { serviceLogger, startService, type RunningService } from '@cairn/service-kit';
import type { DataSource } from 'typeorm';
import { TokenService } from './auth/token-service.js';
import { BlobStore } from './blobs/blob-store.js';
import { configFromEnv, type ResultsConfig } from './config.js';
import { openDatabase, redact } from './db/data-source.js';
import { databaseKind } from './db/database-kind.js';
import { ResultsStoreModule } from './results-store.module.js';

export interface RunningResultsStore extends RunningService {
  readonly config: ResultsConfig;
  readonly ds: DataSource;
  readonly blobs: BlobStore;
}

export interface StartOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Settings over those from the environment (tests). */
  readonly config?: Partial<ResultsConfig>;
  readonly httpPort?: number;
}

/** The blob store and the database, ready (the commands share this with the service). */
export async function openStorage(config: ResultsConfig): Promise<{ ds: DataSource; blobs: BlobStore }> {
  const blobs = new BlobStore(config.dataDir);
  await blobs.init().catch((e: Error) => {
    throw new Error(`blob store ${config.dataDir}: ${e.message}`, { cause: e });
  });
  if (databaseKind(config.database) === 'sqlite') await mkdir(dirname(config.database), { recursive: true });
  const ds = await openDatabase(config.database);
  return { ds, blobs };
}

export async function startResultsStore(options: StartOptions = {}): Promise<RunningResultsStore> {
  const env = options.env ?? process.env;
  const config: ResultsConfig = { ...configFromEnv(env), ...options.config };
  const logger = serviceLogger('results-store', env);
  const { ds, blobs } = await openStorage(config);
  try {
    if (config.tokensFile) logger.log(`loaded ${await new TokenService(ds).loadFile(config.tokensFile)} token hash(es) from ${config.tokensFile}`);
    const service = await startService({
      name: 'results-store',
      module: (bus) => ResultsStoreModule.forRoot(bus, { config, ds, blobs, logger }),
      env,
      ...(options.httpPort === undefined ? {} : { httpPort: options.httpPort }),
    });
    logger.log(`serving ${service.httpUrl} (database ${redact(config.database)}, blobs in ${config.dataDir}, reading ${config.readAccess})`);
    return { ...service, config, ds, blobs };
  } catch (e) {
    if (ds.isInitialized) await ds.destroy().catch(() => undefined);
    throw e;
  }
}
