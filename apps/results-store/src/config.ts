/**
 * The results-store's settings, read from the environment (the NATS and HTTP settings
 * are service-kit's: CAIRN_NATS, CAIRN_HTTP_PORT, CAIRN_HTTP_HOST).
 */
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { settingFromEnv } from '@cairn/contracts';

export type ReadAccess = 'public' | 'token';

export interface RetentionPolicy {
  /** Keep the last N builds of every job (0: keep all). */
  readonly keepLast: number;
  /** Keep failed and cancelled builds for D days even beyond the last N (0: no special case). */
  readonly keepFailedDays: number;
  /** Blobs no build references are deleted once unused for this long. */
  readonly orphanGraceMs: number;
}

export interface ResultsConfig {
  /** SQLite file path or PostgreSQL URL. */
  readonly database: string;
  /** Blob store root (artifacts and archived logs). */
  readonly dataDir: string;
  readonly readAccess: ReadAccess;
  /** File of `<user> <role> sha256:<hex of token>` lines, loaded at start. */
  readonly tokensFile?: string;
  readonly hooksDir?: string;
  readonly hookTimeoutMs: number;
  readonly retention: RetentionPolicy;
  /** How often retention runs inside the service (0: only by the `retention` command). */
  readonly retentionIntervalMs: number;
  /** Durable consumer name; replicas share it and so share the results. */
  readonly durable: string;
  /** How long a delivered result stays claimed without a sign of progress (a crashed replica's results return after this). */
  readonly ackWaitMs: number;
  /** The dashboard's address as users see it (Atom links, hook arguments). */
  readonly publicUrl?: string;
  /** Scheduler admin requests (queues, workers) time out after this. */
  readonly adminTimeoutMs: number;
  /** The page backfill: builds read per batch (0: no backfill) and its pause between builds while readers are served. */
  readonly backfill: { readonly batch: number; readonly pauseMs: number };
  /** Compares: worker threads, and how many more may wait before requests get 503. */
  readonly compare: { readonly workers: number; readonly queue: number };
  /**
   * The reverse proxies whose X-Forwarded-For/-Proto/-Host are believed (Express's
   * `trust proxy`: "loopback", addresses or CIDRs separated by commas, or a hop count);
   * none when unset, so a client cannot claim another address or TLS.
   */
  readonly trustedProxy?: string | number;
  /** An upload's whole body at most (413 beyond; nothing of it is kept). */
  readonly maxUploadBytes: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function number(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new ConfigError(`${name}=${JSON.stringify(raw)}: expected a non-negative number`);
  return value;
}

/** Compare workers: leave a core to the event loop. */
function defaultCompareWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ResultsConfig {
  const dataDir = env.CAIRN_RESULTS_DIR || '/var/lib/cairn/results';
  const readAccess = env.CAIRN_RESULTS_READ || 'public';
  if (readAccess !== 'public' && readAccess !== 'token')
    throw new ConfigError(`CAIRN_RESULTS_READ=${JSON.stringify(readAccess)}: expected "public" or "token"`);
  return {
    // From a file too: a PostgreSQL URL holds its password (a mounted Secret).
    database: settingFromEnv(env, 'CAIRN_RESULTS_DB') || join(dataDir, 'results.sqlite'),
    dataDir,
    readAccess,
    ...(env.CAIRN_RESULTS_TOKENS_FILE ? { tokensFile: env.CAIRN_RESULTS_TOKENS_FILE } : {}),
    ...(env.CAIRN_RESULTS_HOOKS ? { hooksDir: env.CAIRN_RESULTS_HOOKS } : {}),
    hookTimeoutMs: number(env, 'CAIRN_RESULTS_HOOK_TIMEOUT_MS', 60_000),
    retention: {
      keepLast: number(env, 'CAIRN_RESULTS_KEEP_LAST', 0),
      keepFailedDays: number(env, 'CAIRN_RESULTS_KEEP_FAILED_DAYS', 0),
      orphanGraceMs: number(env, 'CAIRN_RESULTS_ORPHAN_GRACE_MS', 3_600_000),
    },
    retentionIntervalMs: number(env, 'CAIRN_RESULTS_RETENTION_INTERVAL_MS', 3_600_000),
    durable: env.CAIRN_RESULTS_DURABLE || 'results-store',
    ackWaitMs: Math.max(1000, number(env, 'CAIRN_RESULTS_ACK_WAIT_MS', 30_000)),
    ...(env.CAIRN_RESULTS_PUBLIC_URL ? { publicUrl: env.CAIRN_RESULTS_PUBLIC_URL.replace(/\/+$/, '') } : {}),
    adminTimeoutMs: number(env, 'CAIRN_RESULTS_ADMIN_TIMEOUT_MS', 1000),
    backfill: { batch: Math.floor(number(env, 'CAIRN_RESULTS_BACKFILL_BATCH', 100)), pauseMs: number(env, 'CAIRN_RESULTS_BACKFILL_PAUSE_MS', 25) },
    ...(env.CAIRN_RESULTS_TRUSTED_PROXY
      ? { trustedProxy: /^\d+$/.test(env.CAIRN_RESULTS_TRUSTED_PROXY) ? Number(env.CAIRN_RESULTS_TRUSTED_PROXY) : env.CAIRN_RESULTS_TRUSTED_PROXY }
      : {}),
    maxUploadBytes: number(env, 'CAIRN_RESULTS_MAX_UPLOAD_BYTES', 1024 ** 3),
    compare: {
      workers: Math.max(1, Math.floor(number(env, 'CAIRN_RESULTS_COMPARE_WORKERS', defaultCompareWorkers()))),
      queue: Math.floor(number(env, 'CAIRN_RESULTS_COMPARE_QUEUE', 32)),
    },
  };
}
