/**
 * The scheduler's records as the messages it sends: one function per message type, so
 * that a field added to a record or a message is mapped in one place. No I/O; what a
 * record does not hold (the time, a worker's platform, re-sealed secrets) comes in as
 * an argument.
 */
import type { Assignment, BuildResult, JobEvent, JobStatus, RunHistory, SealedSecret, Submitted, WorkerInfo } from '@cairn/contracts';
import type { JobRecord, WorkerRecord } from './core/records.js';

/** The answer to a submission; `repeated`: the idempotency key had made this job already. */
export function submitted(job: JobRecord, repeated?: true): Submitted {
  return { job: job.id, cacheHint: job.cacheHint, steps: job.steps, ...(repeated ? { repeated } : {}) };
}

export function jobStatus(job: JobRecord): JobStatus {
  return {
    job: job.id,
    name: job.name,
    client: job.client,
    pool: job.pool,
    state: job.state,
    urgent: job.urgent,
    cacheHint: job.cacheHint,
    attempts: job.attempts,
    submittedAt: job.submittedAt,
    ...(job.worker === undefined ? {} : { worker: job.worker }),
    ...(job.assignedAt === undefined ? {} : { assignedAt: job.assignedAt }),
    ...(job.startedAt === undefined ? {} : { startedAt: job.startedAt }),
    ...(job.finishedAt === undefined ? {} : { finishedAt: job.finishedAt }),
    ...(job.failure === undefined ? {} : { failure: job.failure }),
    ...(job.outcome?.snapshotId === undefined ? {} : { snapshotId: job.outcome.snapshotId }),
    ...(job.requeues === undefined ? {} : { requeues: job.requeues }),
  };
}

/** Which worker ran each attempt: a log reader keeps only those workers' chunks. */
export function runHistory(job: JobRecord): RunHistory {
  return { attempts: job.attempts, worker: job.worker, requeues: job.requeues ?? [] };
}

/** `requeued`: why the run was lost, on the event of a job going back to the queue. */
export function jobEvent(job: JobRecord, at: number, requeued?: string): JobEvent {
  return {
    job: job.id,
    name: job.name,
    client: job.client,
    pool: job.pool,
    state: job.state,
    at,
    ...(job.worker === undefined ? {} : { worker: job.worker }),
    ...(job.failure === undefined ? {} : { failure: job.failure }),
    ...(requeued === undefined ? {} : { requeued }),
  };
}

/** `secrets`: the job's, sealed for the worker that gets the assignment. */
export function assignment(job: JobRecord, lease: string, secrets: SealedSecret[]): Assignment {
  return {
    job: job.id,
    lease,
    client: job.client,
    name: job.name,
    spec: job.spec,
    ...(job.contextDigest === undefined ? {} : { contextDigest: job.contextDigest }),
    secrets,
    outputs: job.outputs,
    timeoutSeconds: job.timeoutSeconds,
    ...(job.limits === undefined ? {} : { limits: job.limits }),
    ...(job.stepTimeoutMs === undefined ? {} : { stepTimeoutMs: job.stepTimeoutMs }),
    cacheHint: job.cacheHint,
    attempt: job.attempts,
    ...(job.trace === undefined ? {} : { trace: job.trace }),
  };
}

/**
 * An ended job's result. `workerPlatform`: the platform of the job's last worker, for a
 * job that ended without an outcome (given up on, or timed out); `now` stands in for a
 * finish time not recorded.
 */
export function buildResult(job: JobRecord, workerPlatform: string | undefined, now: number): BuildResult {
  const outcome = job.outcome;
  return {
    job: job.id,
    name: job.name,
    client: job.client,
    pool: job.pool,
    platform: outcome?.platform ?? workerPlatform ?? 'unknown',
    worker: job.worker ?? 'none',
    spec: job.spec,
    ...(job.contextDigest === undefined ? {} : { contextDigest: job.contextDigest }),
    cacheHint: job.cacheHint,
    state: job.state as BuildResult['state'],
    ...(job.failure === undefined ? {} : { failure: job.failure }),
    steps: outcome?.steps ?? [],
    ...(outcome?.snapshotId === undefined ? {} : { snapshotId: outcome.snapshotId }),
    artifacts: outcome?.artifacts ?? [],
    attempts: Math.max(1, job.attempts),
    submittedAt: job.submittedAt,
    startedAt: job.startedAt ?? job.assignedAt ?? job.submittedAt,
    finishedAt: job.finishedAt ?? now,
  };
}

/** `hints`: how many cache hints the worker holds now. */
export function workerInfo(worker: WorkerRecord, hints: number): WorkerInfo {
  return {
    worker: worker.id,
    pool: worker.pool,
    platform: worker.platform,
    capacity: worker.capacity,
    running: [...worker.running],
    paused: worker.paused,
    draining: worker.draining,
    connected: worker.connected,
    refusing: worker.refusing,
    freeBytes: worker.freeBytes,
    hints,
    lastSeen: worker.lastSeen,
    ...(worker.version !== undefined ? { version: worker.version } : {}),
    ...(worker.lastPruneAt !== undefined ? { lastPruneAt: worker.lastPruneAt } : {}),
  };
}
