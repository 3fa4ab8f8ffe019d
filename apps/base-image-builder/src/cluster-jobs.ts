/**
 * The base-image-builder as a client of its own cluster: it submits builds and probes as
 * ordinary jobs (through the spec-compiler, as `cairn submit` does), under its own client
 * ID, each with an idempotency key that the service stores before submitting, so that a
 * restart that submits again gets the job it made the first time, never a second one.
 */
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  BuildResult,
  callOrThrow,
  readBlob,
  streams,
  subjects,
  TERMINAL,
  type JobStatus,
  type LogsPage,
  type Submitted,
  type SubmitRequest,
} from '@cairn/contracts';

/** The client ID the service's jobs are submitted and listed under. */
export const BUILDER_CLIENT = 'base-image-builder';

export interface JobRequest {
  readonly pool: string;
  readonly name: string;
  readonly spec: string;
  readonly idempotencyKey: string;
  readonly outputs?: readonly string[];
  readonly cacheHint?: string;
  readonly timeoutSeconds?: number;
}

export class ClusterJobs {
  constructor(
    private readonly nc: NatsConnection,
    private readonly pollMs = 500,
  ) {}

  async submit(job: JobRequest): Promise<string> {
    const request: SubmitRequest = {
      pool: job.pool,
      spec: job.spec,
      name: job.name,
      idempotencyKey: job.idempotencyKey,
      outputs: [...(job.outputs ?? [])],
      timeoutSeconds: job.timeoutSeconds ?? 3600,
      ...(job.cacheHint === undefined ? {} : { cacheHint: job.cacheHint }),
    };
    const submitted = await callOrThrow<Submitted>(this.nc, subjects.client(BUILDER_CLIENT, 'submit'), request, { timeoutMs: 30_000, retries: 5 });
    return submitted.job;
  }

  /** Waits for the job to end. */
  async finished(job: string): Promise<JobStatus> {
    for (;;) {
      const status = await callOrThrow<JobStatus>(this.nc, subjects.client(BUILDER_CLIENT, 'status'), { job }, { timeoutMs: 10_000, retries: 5 });
      if (TERMINAL.includes(status.state)) return status;
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
  }

  /** The job's stored result (artifacts and all), read from the results stream from its submission on. */
  async result(status: JobStatus): Promise<BuildResult> {
    const consumer = await jetstream(this.nc).consumers.get(streams.results.name, {
      // One subject as a string: the client sends it as filter_subject, which nats-server 2.9 takes (a list needs 2.10).
      filter_subjects: subjects.result(status.pool),
      opt_start_time: new Date(status.submittedAt - 1000).toISOString(),
    });
    for (;;) {
      const msg = await consumer.next({ expires: 5000 });
      if (msg === null) throw new Error(`job ${status.job}: no result in stream ${streams.results.name}`);
      const parsed = BuildResult.safeParse(msg.json());
      if (parsed.success && parsed.data.job === status.job) return parsed.data;
    }
  }

  /** Writes the artifact `sha256` the job's worker exported to `file`. */
  async download(result: BuildResult, path: string, file: string): Promise<void> {
    const artifact = result.artifacts.find((a) => a.path === path);
    if (!artifact) throw new Error(`job ${result.job} exported no ${path}`);
    const blob = await readBlob(this.nc, { store: 'artifacts', owner: result.worker, sha256: artifact.sha256 });
    if (!blob) throw new Error(`job ${result.job}: artifact ${path} (sha256:${artifact.sha256}) is not in the artifacts store`);
    await pipeline(Readable.from(blob.bytes), createWriteStream(file));
  }

  /** The whole log of the job's last attempt, as text. */
  async log(job: string): Promise<string> {
    let text = '';
    let cursor = 0;
    let attempt = 0;
    for (;;) {
      const page = await callOrThrow<LogsPage>(this.nc, subjects.client(BUILDER_CLIENT, 'logs'), { job, cursor }, { timeoutMs: 10_000, retries: 3 });
      for (const chunk of page.chunks) {
        if (chunk.attempt > attempt) {
          attempt = chunk.attempt;
          text = '';
        }
        if (chunk.attempt === attempt) text += chunk.text;
      }
      if (!page.more) return text;
      cursor = page.cursor;
    }
  }
}
