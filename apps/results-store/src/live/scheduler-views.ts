/**
 * The scheduler's own view of pools, workers and queues, asked for over the bus
 * (`cairn.v1.admin.pools|workers|queues`). Answers are cached for a moment so that a
 * busy dashboard asks the scheduler once per interval, not once per page view, and a
 * scheduler that does not answer costs a page at most one short timeout.
 */
import { buckets, call, openBucket, PoolInfo, QueueInfo, ServiceStatus, subjects, WorkerInfo, type Reply } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';

export type PoolView = z.infer<typeof PoolInfo>;
export type WorkerView = z.infer<typeof WorkerInfo>;
export type QueueView = z.infer<typeof QueueInfo>;

export type View<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

const TTL_MS = 2000;

export class SchedulerViews {
  private readonly cache = new Map<string, { at: number; value: Promise<View<unknown>> }>();

  constructor(
    private readonly bus: NatsConnection,
    private readonly timeoutMs: number,
  ) {}

  pools(): Promise<View<PoolView[]>> {
    return this.ask('pools', z.array(PoolInfo));
  }

  workers(): Promise<View<WorkerView[]>> {
    return this.ask('workers', z.array(WorkerInfo));
  }

  queues(): Promise<View<QueueView[]>> {
    return this.ask('queues', z.array(QueueInfo));
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
    const value = call<unknown>(this.bus, subjects.admin(verb), {}, { timeoutMs: this.timeoutMs }).then((reply: Reply<unknown>): View<T> => {
      if (!reply.ok) return { ok: false, error: `${reply.error.code}: ${reply.error.message}` };
      const parsed = schema.safeParse(reply.value);
      return parsed.success ? { ok: true, value: parsed.data } : { ok: false, error: `${subjects.admin(verb)}: unexpected answer (${parsed.error.issues[0]?.message ?? 'invalid'})` };
    });
    this.cache.set(verb, { at: Date.now(), value });
    return value;
  }
}
