/**
 * The scheduler's own view of pools, workers, queues and clients, asked for over the bus
 * (`cairn.v1.admin.pools|workers|queues|jobs|clients`), and of the runs of one job.
 * Answers are cached for a moment so that a busy dashboard asks the scheduler once per
 * interval, not once per page view, and a scheduler that does not answer costs a page at
 * most one short timeout.
 */
import {
  ActiveJob,
  buckets,
  call,
  ClientInfo,
  JobStatus,
  openBucket,
  PoolInfo,
  QueueInfo,
  ServiceStatus,
  subjects,
  WorkerInfo,
  type Reply,
  type RunHistory,
} from '@cairn/contracts';
import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS } from '@cairn/service-kit';
import type { ResultsConfig } from '../config.js';
import { CONFIG } from '../tokens.js';
import { z } from 'zod';

export type PoolView = z.infer<typeof PoolInfo>;
export type WorkerView = z.infer<typeof WorkerInfo>;
export type QueueView = z.infer<typeof QueueInfo>;
export type ClientView = z.infer<typeof ClientInfo>;

export type View<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

const TTL_MS = 2000;

@Injectable()
export class SchedulerViews {
  private readonly cache = new Map<string, { at: number; value: Promise<View<unknown>> }>();

  private readonly timeoutMs: number;

  constructor(
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(CONFIG) config: Pick<ResultsConfig, 'adminTimeoutMs'>,
  ) {
    this.timeoutMs = config.adminTimeoutMs;
  }

  pools(): Promise<View<PoolView[]>> {
    return this.ask('pools', z.array(PoolInfo));
  }

  workers(): Promise<View<WorkerView[]>> {
    return this.ask('workers', z.array(WorkerInfo));
  }

  queues(): Promise<View<QueueView[]>> {
    return this.ask('queues', z.array(QueueInfo));
  }

  /** Clients with their rates and jobs. Not cached: the page shows a rate just changed. */
  clients(): Promise<View<ClientView[]>> {
    return this.request('clients', z.array(ClientInfo));
  }

  /** The jobs not yet finished, as the scheduler knows them now. Not cached: asked when the board starts. */
  activeJobs(): Promise<View<ActiveJob[]>> {
    return this.request('jobs', z.array(ActiveJob));
  }

  /**
   * Which workers ran a job's runs, asked as the job's client asks (`client.<client>.status`):
   * the check on its log chunks (log-writers.ts). Not cached: asked when a run is new.
   */
  async runsOf(client: string, job: string): Promise<RunHistory | undefined> {
    const reply = await call<unknown>(this.bus, subjects.client(client, 'status'), { job }, { timeoutMs: this.timeoutMs });
    const parsed = reply.ok ? JobStatus.safeParse(reply.value) : undefined;
    return parsed?.success && parsed.data.job === job ? parsed.data : undefined;
  }

  /** The processes `cairn up` supervises (its `cairn-services` bucket): none when the cluster was not started by `cairn up`. */
  services(): Promise<View<ServiceStatus[]>> {
    const cached = this.cache.get('services');
    if (cached && Date.now() - cached.at < TTL_MS) return cached.value as Promise<View<ServiceStatus[]>>;
    const value = (async (): Promise<View<ServiceStatus[]>> => {
      try {
        const kv = await openBucket(this.bus, buckets.services);
        const list: ServiceStatus[] = [];
        for await (const key of await kv.keys()) {
          const entry = await kv.get(key);
          const parsed = entry && entry.length > 0 ? ServiceStatus.safeParse(entry.json()) : undefined;
          if (parsed?.success) list.push(parsed.data);
        }
        return { ok: true, value: list.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true })) };
      } catch (e) {
        return { ok: false, error: `${buckets.services}: ${e instanceof Error ? e.message : String(e)}` };
      }
    })();
    this.cache.set('services', { at: Date.now(), value });
    return value;
  }

  private ask<T>(verb: 'pools' | 'workers' | 'queues', schema: z.ZodType<T>): Promise<View<T>> {
    const cached = this.cache.get(verb);
    if (cached && Date.now() - cached.at < TTL_MS) return cached.value as Promise<View<T>>;
    const at = Date.now();
    const value = this.request(verb, schema);
    this.cache.set(verb, { at, value });
    // A timeout is remembered, so that a silent scheduler costs pages one wait per interval;
    // a quick refusal (no scheduler subscribed yet, as at start) costs nothing to ask again.
    void value.then((view) => {
      if (!view.ok && Date.now() - at < this.timeoutMs && this.cache.get(verb)?.value === value) this.cache.delete(verb);
    });
    return value;
  }

  private request<T>(verb: 'pools' | 'workers' | 'queues' | 'jobs' | 'clients', schema: z.ZodType<T>): Promise<View<T>> {
    return call<unknown>(this.bus, subjects.admin(verb), {}, { timeoutMs: this.timeoutMs }).then((reply: Reply<unknown>): View<T> => {
      if (!reply.ok) return { ok: false, error: `${reply.error.code}: ${reply.error.message}` };
      const parsed = schema.safeParse(reply.value);
      return parsed.success
        ? { ok: true, value: parsed.data }
        : { ok: false, error: `${subjects.admin(verb)}: unexpected answer (${parsed.error.issues[0]?.message ?? 'invalid'})` };
    });
  }
}
