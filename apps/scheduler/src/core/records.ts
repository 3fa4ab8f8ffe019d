/** What the scheduler keeps about jobs and workers; persisted as JSON in the KV buckets. */
import type { JobState, JobSubmission, Outcome, Requeue } from '@cairn/contracts';

export interface JobRecord extends JobSubmission {
  readonly id: string;
  state: JobState;
  /** Assignments so far (1 on the first run). */
  attempts: number;
  readonly submittedAt: number;
  /** When the job (re)entered the queue: cache-affinity holds count from here. */
  queuedAt: number;
  worker?: string;
  lease?: string;
  /**
   * The worker answered the current assignment. Until then, a heartbeat that does not list
   * the job proves nothing (the assignment may still be on its way, e.g. across a NATS
   * restart); an unanswered assignment is requeued by its own timeout instead.
   */
  accepted?: boolean;
  assignedAt?: number;
  startedAt?: number;
  finishedAt?: number;
  failure?: string;
  /** Set once, when a worker completes it (or the scheduler gives up on it). */
  outcome?: Outcome;
  /** The result is in the results stream (republished after a crash otherwise). */
  resultPublished?: boolean;
  /** Running job to cancel when its worker is next heard from. */
  cancelRequested?: string;
  /** Each lost run that went back to the queue, and why (kept for the log's separators). */
  requeues?: Requeue[];
  /** The submission's trace ID (contracts' trace.ts), sent on with its result. */
  trace?: string;
}

export interface WorkerRecord {
  readonly id: string;
  pool: string;
  platform: string;
  capacity: number;
  publicKey: string;
  paused: boolean;
  draining: boolean;
  /** The worker said it takes no new jobs (low disk, shutting down) or refused one. */
  refusing: boolean;
  /** Heard from within the lease TTL. */
  connected: boolean;
  lastSeen: number;
  freeBytes: number;
  /** Jobs assigned to it and not finished. */
  running: string[];
  /** Cache hints it holds, with when each was last built or assigned there (kept across restarts). */
  hints?: Record<string, number>;
  /** What the worker reports for operators. */
  version?: string;
  lastPruneAt?: number;
}

export interface SchedulerSettings {
  /** Jobs per unit of virtual time; default 1. */
  rates: Record<string, number>;
  pausedPools: string[];
  /** Pools known because a worker registered for them. */
  pools: string[];
}
