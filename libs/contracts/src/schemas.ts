/**
 * Message schemas, validated at every edge: a service parses what it receives with
 * these before acting on it, so a malformed or hostile message is answered with a reason
 * and changes nothing.
 */
import { z } from 'zod';
import { limits } from './streams.js';
import { TOKEN } from './subjects.js';
import { TRACE_ID } from './trace.js';

const token = (what: string) => z.string().regex(TOKEN, `${what} must be 1-64 letters, digits, '_' or '-'`);
export const ClientId = token('a client ID');
export const WorkerId = token('a worker ID');
export const PoolName = token('a pool name');
/** A trace ID (trace.ts) carried in a message's body, where one message is about several requests. */
export const TraceId = z.string().regex(TRACE_ID, 'a trace ID is 16 to 32 hex digits');
export const JobId = z.string().regex(/^j-[0-9a-z]{8,40}$/, 'a job ID looks like j-<letters and digits>');
export const Digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'a digest is sha256:<64 hex digits>');
const epochMs = z.number().int().nonnegative();

/** A value sealed for one recipient (see sealed-box.ts). */
export const SealedBox = z.object({
  epk: z.string().max(200),
  iv: z.string().max(64),
  ct: z.string().max(Math.ceil((limits.maxSecretBytes * 4) / 3) + 64),
  tag: z.string().max(64),
});
export type SealedBox = z.infer<typeof SealedBox>;

export const SealedSecret = z.object({ id: z.string().min(1).max(128), sealed: SealedBox });
export type SealedSecret = z.infer<typeof SealedSecret>;

// ---- compile --------------------------------------------------------------------------

export const SpecFormat = z.enum(['sexp', 'dockerfile']);
export const CompileRequest = z.object({
  spec: z.string().max(limits.maxSpecBytes, `a spec is at most ${limits.maxSpecBytes} bytes`),
  format: SpecFormat.default('sexp'),
});
export type CompileRequest = z.infer<typeof CompileRequest>;

export const PlannedStep = z.object({
  stage: z.string(),
  kind: z.string(),
  op: z.string(),
  id: z.string().optional(),
  unknown: z.string().optional(),
});
export type PlannedStep = z.infer<typeof PlannedStep>;

export const PinnedImage = z.object({ stage: z.string(), image: z.string(), pinned: z.string() });
export const Compiled = z.object({
  /** The spec in canonical (OBuilder layout) form, with every base image pinned by digest. */
  canonical: z.string(),
  images: z.array(PinnedImage),
  steps: z.array(PlannedStep),
  /** Jobs with the same hint share most of their cache; the scheduler keeps them together. */
  cacheHint: z.string(),
});
export type Compiled = z.infer<typeof Compiled>;

// ---- submit (client -> spec-compiler) and enqueue (spec-compiler -> scheduler) ---------

/**
 * A submission's key of the client's choosing: the same key again (a retried request
 * whose reply was lost, a CI job run again) gets the job it first made, not a second one.
 */
export const IdempotencyKey = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'an idempotency key is 1-128 of A-Z a-z 0-9 . _ : -');

/** What each run step of a job may use; a worker caps it by its own limits. */
export const StepBounds = z.object({
  limits: z
    .object({
      memoryBytes: z.number().int().positive().optional(),
      pids: z.number().int().positive().optional(),
      cpus: z.number().positive().optional(),
      /** Bytes a step may add to its snapshot: the worker's store enforces it, or refuses the step. */
      diskBytes: z.number().int().positive().optional(),
    })
    .strict()
    .optional(),
  /** A run step still running after this long is killed and fails. */
  stepTimeoutMs: z
    .number()
    .int()
    .positive()
    .max(7 * 24 * 3600 * 1000)
    .optional(),
});

export const SubmitRequest = z
  .object({
    pool: PoolName,
    spec: CompileRequest.shape.spec,
    format: SpecFormat.default('sexp'),
    /** Job name for the history (defaults to the spec file's base name). */
    name: z.string().min(1).max(200).default('unnamed'),
    contextDigest: Digest.optional(),
    urgent: z.boolean().default(false),
    secrets: z.array(SealedSecret).max(limits.maxSecrets).default([]),
    /** Absolute paths in the final snapshot to export as artifacts. */
    outputs: z
      .array(
        z
          .string()
          .regex(/^\/[^\0]*$/, 'an output is an absolute path')
          .max(4096),
      )
      .max(256)
      .default([]),
    timeoutSeconds: z
      .number()
      .int()
      .positive()
      .max(7 * 24 * 3600)
      .default(3600),
    cacheHint: z.string().max(200).optional(),
    idempotencyKey: IdempotencyKey.optional(),
  })
  .extend(StepBounds.shape);
export type SubmitRequest = z.input<typeof SubmitRequest>;

export const JobSubmission = z
  .object({
    client: ClientId,
    pool: PoolName,
    name: z.string(),
    spec: z.string(),
    contextDigest: Digest.optional(),
    urgent: z.boolean(),
    secrets: z.array(SealedSecret),
    outputs: z.array(z.string()),
    timeoutSeconds: z.number().int().positive(),
    cacheHint: z.string(),
    steps: z.number().int().nonnegative(),
    idempotencyKey: IdempotencyKey.optional(),
  })
  .extend(StepBounds.shape);
export type JobSubmission = z.infer<typeof JobSubmission>;

export const JobState = z.enum(['queued', 'assigned', 'running', 'succeeded', 'failed', 'cancelled']);
export type JobState = z.infer<typeof JobState>;
export const TERMINAL: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

/** `repeated`: the idempotency key had made this job already; nothing new was queued. */
export const Submitted = z.object({ job: JobId, cacheHint: z.string(), steps: z.number(), repeated: z.boolean().optional() });
export type Submitted = z.infer<typeof Submitted>;

// ---- job status ------------------------------------------------------------------------

export const JobRef = z.object({ job: JobId });
export const StepResult = z.object({
  stage: z.string(),
  op: z.string(),
  id: z.string(),
  cached: z.boolean(),
  ms: z.number().nonnegative(),
});
export type StepResult = z.infer<typeof StepResult>;
export const Artifact = z.object({ path: z.string(), size: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });
export type Artifact = z.infer<typeof Artifact>;

/** A run of a job that was lost and queued again: `attempt` is the run that was lost. */
export const Requeue = z.object({ attempt: z.number().int().positive(), reason: z.string(), at: epochMs, worker: z.string().optional() });
export type Requeue = z.infer<typeof Requeue>;

export const JobStatus = z.object({
  job: JobId,
  name: z.string(),
  client: ClientId,
  pool: PoolName,
  state: JobState,
  urgent: z.boolean(),
  cacheHint: z.string(),
  attempts: z.number().int().nonnegative(),
  worker: z.string().optional(),
  submittedAt: epochMs,
  assignedAt: epochMs.optional(),
  startedAt: epochMs.optional(),
  finishedAt: epochMs.optional(),
  failure: z.string().optional(),
  snapshotId: z.string().optional(),
  /** Why each lost run went back to the queue: the log shows them between its attempts. */
  requeues: z.array(Requeue).optional(),
});
export type JobStatus = z.infer<typeof JobStatus>;

// ---- logs ------------------------------------------------------------------------------

/**
 * Where a snapshot step of the engine begins or ends in a job's log (issue 12), so that
 * readers fold the log by step without reading its human text. A chunk that carries one
 * has no text; the chunks before and after it place it. A `started` step's heading is
 * the first line of text after it.
 */
export const LogStep = z.discriminatedUnion('t', [
  /** `heading`: the engine's heading of the op, e.g. `/src: (run (shell "make"))`; `stage`: the child build's name, '' for the main build. */
  z.object({ t: z.literal('started'), heading: z.string().max(8192), stage: z.string().max(200) }),
  /**
   * The step `stage` started last is done (child builds run at once, so their steps
   * interleave): `id` is the snapshot it published or replayed, `cached` says replayed.
   */
  z.object({ t: z.literal('finished'), stage: z.string().max(200), id: z.string().max(128), cached: z.boolean(), ms: z.number().nonnegative() }),
]);
export type LogStep = z.infer<typeof LogStep>;

export const LogChunk = z.object({
  job: JobId,
  /** 1, 2, 3... per job: a follower that joins late reads the stored chunks, then the live ones, and drops repeats. */
  seq: z.number().int().positive(),
  /** The run this chunk belongs to: a job requeued after a lost worker logs again from seq 1. */
  attempt: z.number().int().positive().default(1),
  text: z.string(),
  /** Present on the last chunk of a job. */
  end: JobState.optional(),
  /** A step boundary at this point of the log (then `text` is empty). */
  step: LogStep.optional(),
});
export type LogChunk = z.infer<typeof LogChunk>;
/** `cursor`: where the previous page stopped in the logs stream (0 = from the start). */
export const LogsRequest = z.object({ job: JobId, cursor: z.number().int().nonnegative().default(0) });
export const LogsPage = z.object({ chunks: z.array(LogChunk), more: z.boolean(), cursor: z.number().int().nonnegative() });
export type LogsPage = z.infer<typeof LogsPage>;

// ---- workers ---------------------------------------------------------------------------

export const Lease = z.object({ job: JobId, lease: z.string().min(1).max(64) });
export type Lease = z.infer<typeof Lease>;

export const Register = z.object({
  worker: WorkerId,
  pool: PoolName,
  platform: z.string().max(64),
  capacity: z.number().int().positive().max(1024),
  store: z.object({ kind: z.string(), freeBytes: z.number().nonnegative(), totalBytes: z.number().nonnegative() }),
  /** X25519 public key (SPKI DER, base64) that job secrets are sealed to. */
  publicKey: z.string().max(200),
  hints: z.array(z.string().max(200)).max(10_000).default([]),
  running: z.array(Lease).default([]),
  /** The worker-agent's version, for operators (the dashboard's worker page). */
  version: z.string().max(64).optional(),
  /** When the worker last pruned its store. */
  lastPruneAt: epochMs.optional(),
});
export type Register = z.infer<typeof Register>;
export const Registered = z.object({ heartbeatMs: z.number(), leaseTtlMs: z.number() });
export type Registered = z.infer<typeof Registered>;

export const Heartbeat = z.object({
  worker: WorkerId,
  running: z.array(Lease),
  freeBytes: z.number().nonnegative(),
  /** The worker takes no new jobs (low disk, draining). */
  refusing: z.boolean().default(false),
  /** The worker is shutting down: a run it no longer lists was handed back, not delayed in transit. */
  draining: z.boolean().optional(),
  /** Hints of caches built since the last heartbeat. */
  hints: z.array(z.string().max(200)).max(10_000).default([]),
  lastPruneAt: epochMs.optional(),
});
export type Heartbeat = z.infer<typeof Heartbeat>;
/** `known: false` tells a worker the scheduler has forgotten it: register again. */
export const HeartbeatReply = z.object({ known: z.boolean(), cancel: z.array(JobId) });
export type HeartbeatReply = z.infer<typeof HeartbeatReply>;

export const Started = Lease.extend({ worker: WorkerId });

export const Outcome = z.object({
  state: z.enum(['succeeded', 'failed', 'cancelled']),
  failure: z.string().max(8192).optional(),
  steps: z.array(StepResult).max(10_000),
  snapshotId: z.string().optional(),
  artifacts: z.array(Artifact).max(1000),
  platform: z.string(),
  startedAt: epochMs,
  finishedAt: epochMs,
});
export type Outcome = z.infer<typeof Outcome>;
export const Complete = Lease.extend({ worker: WorkerId, outcome: Outcome });
export type Complete = z.infer<typeof Complete>;
export const Recorded = z.object({ recorded: z.boolean(), reason: z.string().optional() });

/** What a worker is told to build. Secrets are sealed to that worker's key. */
export const Assignment = z
  .object({
    job: JobId,
    lease: z.string(),
    client: ClientId,
    name: z.string(),
    spec: z.string(),
    contextDigest: Digest.optional(),
    secrets: z.array(SealedSecret),
    outputs: z.array(z.string()),
    timeoutSeconds: z.number(),
    cacheHint: z.string(),
    attempt: z.number().int().positive(),
    /**
     * The submission's trace ID: the worker runs the job under it, so its lines about the
     * job and the calls it makes for it carry it. In the body, not only in the header,
     * because an assign-batch carries the jobs of several submissions.
     */
    trace: TraceId.optional(),
  })
  .extend(StepBounds.shape);
export type Assignment = z.infer<typeof Assignment>;
export const Accepted = z.object({ accepted: z.boolean(), reason: z.string().optional() });
export type Accepted = z.infer<typeof Accepted>;
/**
 * Several assignments to one worker in one message (`agent.<id>.assign-batch`): what the
 * scheduler hands a worker with free slots at once. Answered one Accepted per
 * assignment, in order; each is taken or refused as if it had come alone.
 */
export const AssignmentBatch = z.object({ assignments: z.array(Assignment).min(1) });
export type AssignmentBatch = z.infer<typeof AssignmentBatch>;
export const BatchAccepted = z.object({ answers: z.array(Accepted) });
export type BatchAccepted = z.infer<typeof BatchAccepted>;
export const CancelOrder = Lease.extend({ reason: z.string() });
export type CancelOrder = z.infer<typeof CancelOrder>;

// ---- results (scheduler -> results-store) ----------------------------------------------

export const BuildResult = z.object({
  job: JobId,
  name: z.string(),
  client: ClientId,
  pool: PoolName,
  platform: z.string(),
  worker: z.string(),
  spec: z.string(),
  contextDigest: Digest.optional(),
  cacheHint: z.string(),
  state: z.enum(['succeeded', 'failed', 'cancelled']),
  failure: z.string().optional(),
  steps: z.array(StepResult),
  snapshotId: z.string().optional(),
  artifacts: z.array(Artifact),
  attempts: z.number().int().positive(),
  submittedAt: epochMs,
  startedAt: epochMs,
  finishedAt: epochMs,
});
export type BuildResult = z.infer<typeof BuildResult>;

/** Job state changes on `events.job.<pool>.<state>`, for live views. */
export const JobEvent = z.object({
  job: JobId,
  name: z.string(),
  client: ClientId,
  pool: PoolName,
  state: JobState,
  worker: z.string().optional(),
  at: epochMs,
  failure: z.string().optional(),
  /** Set on the event of a lost run going back to the queue: why it was lost. */
  requeued: z.string().optional(),
});
export type JobEvent = z.infer<typeof JobEvent>;

/**
 * A process `cairn up` supervises, as it publishes it in the `cairn-services` bucket
 * (key: the process name) for `cairn admin services` and the dashboard.
 */
export const ServiceStatus = z.object({
  name: z.string(),
  state: z.enum(['starting', 'running', 'ready', 'restarting', 'failed', 'stopping', 'stopped']),
  pid: z.number().int().optional(),
  restarts: z.number().int().nonnegative(),
  /** Exits in a row that came soon after a start. */
  quickFailures: z.number().int().nonnegative(),
  startedAt: epochMs.optional(),
  lastExit: z.string().optional(),
  /** The newest last: "worker-1 exited (signal SIGKILL); restarting in 1 s". */
  events: z.array(z.object({ at: epochMs, message: z.string() })),
  /** The `cairn up` process that supervises it. */
  supervisor: z.number().int(),
});
export type ServiceStatus = z.infer<typeof ServiceStatus>;

// ---- admin -----------------------------------------------------------------------------

export const WorkerRef = z.object({ worker: WorkerId });
export const PoolRef = z.object({ pool: PoolName });
export const ClientRate = z.object({ client: ClientId, rate: z.number().positive().max(1e6) });
export const Empty = z.object({}).default({});

export const PoolInfo = z.object({ pool: PoolName, paused: z.boolean(), queued: z.number(), running: z.number(), workers: z.number() });
/**
 * A job not yet finished, as `admin.jobs` lists them: its latest event (at the time of
 * the answer) and when it was submitted. A dashboard that starts fills its board from
 * these, then follows the events.
 */
export const ActiveJob = JobEvent.extend({ submittedAt: epochMs });
export type ActiveJob = z.infer<typeof ActiveJob>;
export const WorkerInfo = z.object({
  worker: WorkerId,
  pool: PoolName,
  platform: z.string(),
  capacity: z.number(),
  running: z.array(JobId),
  paused: z.boolean(),
  draining: z.boolean(),
  connected: z.boolean(),
  refusing: z.boolean(),
  freeBytes: z.number(),
  hints: z.number(),
  lastSeen: epochMs,
  version: z.string().optional(),
  lastPruneAt: epochMs.optional(),
});
export type WorkerInfo = z.infer<typeof WorkerInfo>;
export const QueueInfo = z.object({ pool: PoolName, client: ClientId, urgent: z.number(), normal: z.number() });
export const ClientInfo = z.object({ client: ClientId, rate: z.number(), queued: z.number(), running: z.number(), finished: z.number() });

// ---- base images (admin -> base-image-builder) -----------------------------------------

/** `cairn images rebuild`: the named images (or all), checked now; `force` rebuilds even unchanged ones. */
export const ImagesRebuild = z
  .object({ names: z.array(z.string().min(1).max(200)).max(1000).default([]), all: z.boolean().default(false), force: z.boolean().default(false) })
  .refine((r) => r.all !== r.names.length > 0, 'name the images to rebuild, or all, not both');
export type ImagesRebuild = z.input<typeof ImagesRebuild>;

/** One image as `cairn images status` and the dashboard show it. */
export const BaseImageStatus = z.object({
  name: z.string(),
  tags: z.array(z.string()),
  state: z.enum(['published', 'building', 'retrying', 'failed', 'waiting', 'absent']),
  why: z.string(),
  digest: Digest.optional(),
  publishedAt: epochMs.optional(),
  inputs: Digest.optional(),
  job: z.string().optional(),
  nextRunAt: epochMs.optional(),
  /** Its cron schedule (UTC). */
  schedule: z.string().optional(),
  /** The last failure of its newest inputs; `retryAt` absent once the retries are used up. */
  failure: z.object({ reason: z.string(), at: epochMs, count: z.number().int(), retryAt: epochMs.optional(), job: z.string().optional() }).optional(),
  /** Newest first; `job` is the build that made the digest. */
  history: z.array(z.object({ digest: Digest, at: epochMs, job: z.string().optional() })),
});
export type BaseImageStatus = z.infer<typeof BaseImageStatus>;
