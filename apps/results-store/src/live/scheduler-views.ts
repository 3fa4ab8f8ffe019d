/**
 * The scheduler's own view of pools, workers and queues, asked for over the bus
 * (`cairn.v1.admin.pools|workers|queues`). Answers are cached for a moment so that a
 * busy dashboard asks the scheduler once per interval, not once per page view, and a
 * scheduler that does not answer costs a page at most one short timeout.
 */
import { call, PoolInfo, QueueInfo, subjects, WorkerInfo, type Reply } from '@cairn/contracts';
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
