/**
 * The JetStream streams, key-value buckets and object stores: everything that must
 * survive a restart of a service or of the NATS server.
 */
import { subjects } from './subjects.js';

export const streams = {
  /** Build logs, replayable per job from the start. */
  logs: { name: 'CAIRN_LOGS', subjects: [subjects.logsAll], maxAgeDays: 14 },
  /** Results awaiting (and kept after) the results-store; one per job (msg ID = job ID). */
  results: { name: 'CAIRN_RESULTS', subjects: [subjects.resultsAll], maxAgeDays: 30, duplicateWindowMinutes: 60 },
} as const;

export const buckets = {
  /** Job records by job ID: the scheduler's queue and every job's state. */
  jobs: 'cairn-jobs',
  /** Worker records by worker ID (pool, capacity, pause state, cache hints). */
  workers: 'cairn-workers',
  /** Scheduler settings: client rates, paused pools. */
  settings: 'cairn-settings',
  /** Processes supervised by `cairn up`, by name: state, restarts, recent events. */
  services: 'cairn-services',
} as const;

export const objectStores = {
  /** Build contexts as tar files, named by `sha256:<hex>` of the tar. */
  contexts: 'cairn-contexts',
  /** Build outputs, named by `sha256:<hex>` of the file. */
  artifacts: 'cairn-artifacts',
} as const;

export const limits = {
  /** A build context larger than this is refused before any byte is stored. */
  maxContextBytes: 256 * 1024 * 1024,
  /** Spec text larger than this is refused. */
  maxSpecBytes: 1024 * 1024,
  /** One artifact. */
  maxArtifactBytes: 1024 * 1024 * 1024,
  /** Secrets per job and bytes per secret. */
  maxSecrets: 32,
  maxSecretBytes: 64 * 1024,
} as const;
