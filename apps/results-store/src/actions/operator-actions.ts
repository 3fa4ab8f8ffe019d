/**
 * The dashboard's actions. Each goes over the bus to the service that owns what it
 * changes (the scheduler: jobs, workers, pools, clients' rates), and each is written to
 * the audit log with who asked, what on what, when, and how it ended — refusals and
 * timeouts included, so the log answers "who drained w3?" and "why did nothing happen?".
 * Who may act is checked before this (the access guard and the form token); this file
 * trusts the principal it is given.
 */
import { BaseImageStatus, call, JobSubmission, subjects, Submitted, type Reply } from '@cairn/contracts';
import { z } from 'zod';
import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS } from '@cairn/service-kit';
import type { DataSource } from 'typeorm';
import type { Principal } from '../auth/token-service.js';
import type { ResultsConfig } from '../config.js';
import { AuditEntity, type AuditResult } from '../db/audit.entity.js';
import { RetryEntity } from '../db/retry.entity.js';
import type { BuildId } from '../ids.js';
import { exclusiveWrite } from '../db/exclusive-write.js';
import type { BuildDetail } from '../queries/build-queries.js';
import { CONFIG, DATA_SOURCE } from '../tokens.js';

export type WorkerVerb = 'pause' | 'unpause' | 'drain';
export type PoolVerb = 'pause' | 'unpause' | 'drain';

export interface ActionOutcome {
  readonly result: AuditResult;
  /** For the person who acted: what happened, or why not. */
  readonly message: string;
  /** The retry's new build. */
  readonly build?: string;
}

export interface AuditEntry {
  readonly id: number;
  readonly at: number;
  readonly user: string;
  readonly role: string;
  readonly action: string;
  readonly target: string;
  readonly result: AuditResult;
  readonly detail: string | null;
}

/** The base-image-builder answers a rebuild once it has checked the images' inputs. */
const REBUILD_TIMEOUT_MS = 15_000;

/** A retried build is queued this long at most; its original's own timeout is not stored. */
const RETRY_TIMEOUT_S = 3600;

@Injectable()
export class OperatorActions {
  private readonly timeoutMs: number;

  constructor(
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(DATA_SOURCE) private readonly ds: DataSource,
    @Inject(CONFIG) config: Pick<ResultsConfig, 'adminTimeoutMs'>,
  ) {
    this.timeoutMs = config.adminTimeoutMs;
  }

  cancelJob(who: Principal, job: string): Promise<ActionOutcome> {
    return this.act(who, 'job-cancel', job, subjects.admin('job-cancel'), { job }, () => `job ${job}: cancel requested`);
  }

  worker(who: Principal, worker: string, verb: WorkerVerb): Promise<ActionOutcome> {
    return this.act(who, `worker-${verb}`, worker, subjects.admin(`worker-${verb}`), { worker }, () => `worker ${worker}: ${verb} done`);
  }

  pool(who: Principal, pool: string, verb: PoolVerb): Promise<ActionOutcome> {
    return this.act(who, `pool-${verb}`, pool, subjects.admin(`pool-${verb}`), { pool }, () => `pool ${pool}: ${verb} done`);
  }

  clientRate(who: Principal, client: string, rate: number): Promise<ActionOutcome> {
    return this.act(who, 'client-rate', client, subjects.admin('client-rate'), { client, rate }, () => `client ${client}: rate set to ${rate}`);
  }

  /**
   * Runs a stored build again: its canonical spec (base images already pinned) with the
   * same context digest, for the same client, pool and outputs, straight to the
   * scheduler (it was compiled once). Secrets are not kept with a result, so a build
   * that needed them runs without them and says so in its log.
   */
  async retryBuild(who: Principal, build: BuildDetail): Promise<ActionOutcome> {
    const submission: JobSubmission = {
      client: build.client,
      pool: build.pool,
      name: build.job,
      spec: build.spec,
      ...(build.contextDigest ? { contextDigest: build.contextDigest } : {}),
      urgent: false,
      secrets: [],
      outputs: build.artifacts.map((a) => a.path),
      timeoutSeconds: RETRY_TIMEOUT_S,
      cacheHint: build.cacheHint,
      steps: build.stepsTotal,
    };
    const outcome = await this.act(who, 'build-retry', build.id, subjects.enqueue, submission, (value) => {
      const parsed = Submitted.safeParse(value);
      return parsed.success ? `build ${build.id}: retried as ${parsed.data.job}` : `build ${build.id}: retried`;
    });
    const job = /retried as (\S+)$/.exec(outcome.message)?.[1];
    if (outcome.result !== 'ok' || !job) return outcome;
    await exclusiveWrite(this.ds, () =>
      this.ds.getRepository(RetryEntity).insert({ build: job as BuildId, retryOf: build.id, user: who.user, at: Date.now() }),
    );
    return { ...outcome, build: job };
  }

  /** Asks the base-image-builder to rebuild one image (by name) or all of them. */
  rebuildImages(who: Principal, image: string | 'all'): Promise<ActionOutcome> {
    const body = image === 'all' ? { all: true } : { names: [image] };
    return this.act(who, 'image-rebuild', image, subjects.admin('images-rebuild'), body, () => `base image ${image}: rebuild requested`, REBUILD_TIMEOUT_MS);
  }

  /** Every base image as the base-image-builder reports it; an error when it does not answer (none is deployed). */
  async images(): Promise<{ ok: true; value: BaseImageStatus[] } | { ok: false; error: string }> {
    const reply = await call<unknown>(this.bus, subjects.admin('images'), {}, { timeoutMs: this.timeoutMs }).catch((e: unknown) => ({
      ok: false as const,
      error: { code: 'unavailable', message: String(e) },
    }));
    if (!reply.ok) return { ok: false, error: `${reply.error.code}: ${reply.error.message}` };
    const parsed = z.array(BaseImageStatus).safeParse(reply.value);
    return parsed.success ? { ok: true, value: parsed.data } : { ok: false, error: `${subjects.admin('images')}: unexpected answer` };
  }

  /** The build `id` retried, if it was made by a retry. */
  async retryOf(id: BuildId): Promise<BuildId | undefined> {
    const row = await this.ds.getRepository(RetryEntity).findOne({ where: { build: id }, select: { retryOf: true } });
    return row?.retryOf;
  }

  /** The newest entries first; `before`: an entry's id, for the next page. */
  async audit(limit: number, before?: number): Promise<AuditEntry[]> {
    const q = this.ds.getRepository(AuditEntity).createQueryBuilder('a').orderBy('a.id', 'DESC').limit(limit);
    if (before !== undefined) q.where('a.id < :before', { before });
    return (await q.getMany()).map(({ id, at, user, role, action, target, result, detail }) => ({ id, at, user, role, action, target, result, detail }));
  }

  private async act(
    who: Principal,
    action: string,
    target: string,
    subject: string,
    data: unknown,
    done: (value: unknown) => string,
    timeoutMs = this.timeoutMs,
  ): Promise<ActionOutcome> {
    let reply: Reply<unknown>;
    try {
      reply = await call<unknown>(this.bus, subject, data, { timeoutMs });
    } catch (e) {
      reply = { ok: false, error: { code: 'unavailable', message: e instanceof Error ? e.message : String(e) } };
    }
    const outcome: ActionOutcome = reply.ok
      ? { result: 'ok', message: done(reply.value) }
      : {
          result: reply.error.code === 'unavailable' || reply.error.code === 'internal' ? 'failed' : 'refused',
          message: `${action} ${target}: ${reply.error.message}`,
        };
    await exclusiveWrite(this.ds, () =>
      this.ds
        .getRepository(AuditEntity)
        .insert({ at: Date.now(), user: who.user, role: who.role, action, target: target.slice(0, 200), result: outcome.result, detail: outcome.message }),
    );
    return outcome;
  }
}
