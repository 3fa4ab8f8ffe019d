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
  /** The base-image-builder's images by name: published digest, history, rebuild in flight, failures. */
  baseImages: 'cairn-base-images',
} as const;

/**
 * Content-addressed blobs, each in a stream of its own (layout and rules in
 * blob-store.ts): written once by their owner, never purged, deleted or rolled up, gone
 * only by age.
 */
export const blobStores = {
  /** Build contexts as tar files, owned by the client that uploaded them. */
  contexts: { stream: 'CAIRN_CONTEXTS', maxAgeDays: 30 },
  /** Build outputs, owned by the worker that exported them. */
  artifacts: { stream: 'CAIRN_ARTIFACTS', maxAgeDays: 30 },
} as const;
export type BlobStoreName = keyof typeof blobStores;

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
