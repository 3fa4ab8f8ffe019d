import { arch, hostname, platform, tmpdir } from 'node:os';
import { parseBytes } from '@cairn/sandbox';
import { CacheDomains, TOKEN } from '@cairn/contracts';

/**
 * The worker-agent's own settings, from the environment. The engine's settings (store,
 * fetcher, sandbox, secret digest key) are read by libs/builder's openConfiguredBuilder
 * from the same environment and the machine config, exactly as `cairn build` reads them.
 */
export interface AgentConfig {
  /** The worker ID: the subject token NATS permissions pin to this worker. */
  readonly worker: string;
  readonly pool: string;
  /** What the worker builds for, reported in every outcome (e.g. linux-x86_64). */
  readonly platform: string;
  /** Builds run at once. */
  readonly capacity: number;
  /**
   * Free bytes in the store below which it is pruned (least recently used first); below
   * half of it the worker refuses new jobs. 0 turns both off.
   */
  readonly pruneBelowBytes: number;
  /** Until the scheduler says otherwise in its Registered reply. */
  readonly heartbeatMs: number;
  /** How often free space is checked while no heartbeat runs (and at most how stale it is). */
  readonly diskCheckMs: number;
  /** Each attempt of register/started/complete waits this long for an answer. */
  readonly callTimeoutMs: number;
  /** Where jobs keep their scratch files (the context and its tar) and log spools. */
  readonly scratchDir: string;
  /**
   * Per job, while its log cannot be published (NATS down): bytes kept in memory, and
   * bytes spilled to a spool file in scratchDir beyond them. Past the spool's limit the
   * middle of the log is dropped, and the log says how much.
   */
  readonly logMemoryBytes: number;
  readonly logSpoolBytes: number;
  /** Whose caches a job uses: its client's own, or a domain the operator set (CAIRN_CACHE_DOMAINS). */
  readonly cacheDomains: CacheDomains;
  /**
   * How long a drain (SIGTERM) may wait for the running builds before handing them back
   * to the scheduler and exiting; 0 waits for as long as they run. Kubernetes kills a pod
   * after its terminationGracePeriodSeconds, which must be longer (infra/k8s checks it).
   */
  readonly drainTimeoutMs: number;
}

export class AgentConfigError extends Error {
  override readonly name = 'AgentConfigError';
}

const ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'arm64', ia32: 'i386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** `linux-x86_64` style, the way pools are named. */
export function defaultPlatform(): string {
  return `${platform()}-${ARCH[arch()] ?? arch()}`;
}

export function agentConfigFromEnv(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const platformName = env.CAIRN_PLATFORM ?? defaultPlatform();
  // A hostname may hold dots (a FQDN); a subject token may not.
  const worker = env.CAIRN_WORKER_ID ?? hostname().split('.')[0]!;
  const pool = env.CAIRN_POOL ?? platformName;
  if (!TOKEN.test(worker)) throw new AgentConfigError(`CAIRN_WORKER_ID "${worker}" must be 1-64 letters, digits, '_' or '-'`);
  if (!TOKEN.test(pool)) throw new AgentConfigError(`CAIRN_POOL "${pool}" must be 1-64 letters, digits, '_' or '-'`);
  return {
    worker,
    pool,
    platform: platformName,
    capacity: positiveInt(env, 'CAIRN_CAPACITY', 2),
    pruneBelowBytes: bytes(env, 'CAIRN_PRUNE_BELOW', 0),
    heartbeatMs: positiveInt(env, 'CAIRN_HEARTBEAT_MS', 5000),
    diskCheckMs: positiveInt(env, 'CAIRN_DISK_CHECK_MS', 10_000),
    callTimeoutMs: positiveInt(env, 'CAIRN_CALL_TIMEOUT_MS', 3000),
    scratchDir: env.CAIRN_SCRATCH_DIR || tmpdir(),
    logMemoryBytes: positiveBytes(env, 'CAIRN_LOG_MEMORY_LIMIT', 8 * 1024 ** 2),
    logSpoolBytes: positiveBytes(env, 'CAIRN_LOG_SPOOL_LIMIT', 256 * 1024 ** 2),
    cacheDomains: cacheDomains(env.CAIRN_CACHE_DOMAINS),
    drainTimeoutMs: env.CAIRN_DRAIN_TIMEOUT_MS === '0' ? 0 : positiveInt(env, 'CAIRN_DRAIN_TIMEOUT_MS', 0),
  };
}

function cacheDomains(text: string | undefined): CacheDomains {
  try {
    return CacheDomains.parse(text);
  } catch (e) {
    throw new AgentConfigError(`CAIRN_CACHE_DOMAINS: ${(e as Error).message}`);
  }
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new AgentConfigError(`${name} must be a positive integer, not "${text}"`);
  return n;
}

/** A byte count as the engine's settings take one (`500m`, `20g`, `1073741824`); the error names the variable. */
function bytes(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  try {
    return parseBytes(text, name);
  } catch (e) {
    throw new AgentConfigError((e as Error).message);
  }
}

function positiveBytes(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const n = bytes(env, name, fallback);
  if (n <= 0) throw new AgentConfigError(`${name} must be more than 0 bytes, not "${env[name]}"`);
  return n;
}
