/**
 * Builds that are queued or running, from the scheduler's job events on core NATS
 * (`cairn.v1.events.job.<pool>.<state>`): the dashboard shows them before any result
 * exists, and pages follow them through server-sent events. Every replica listens on
 * its own (no queue group), so each has the whole picture. A finished job stays on the
 * board for a while so a page that reconnects still learns how it ended. Events say
 * only what changes: a board that starts (the results-store restarted) first asks the
 * scheduler which jobs are queued or running (`admin.jobs`), until it gets an answer.
 */
import { JobEvent, subjects, TERMINAL } from '@cairn/contracts';
import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { BUS } from '@cairn/service-kit';
import { SchedulerViews } from './scheduler-views.js';

export interface LiveJob extends JobEvent {
  /** When the job was first seen queued (or first seen at all). */
  readonly since: number;
}

export type LiveNotice = { readonly kind: 'job'; readonly job: LiveJob } | { readonly kind: 'stored'; readonly build: string };
export type LiveListener = (notice: LiveNotice) => void;

const KEEP_FINISHED_MS = 10 * 60_000;
const MAX_JOBS = 50_000;
/** How often a board that could not ask the scheduler asks again. */
const FILL_RETRY_MS = 5000;

@Injectable()
export class LiveBoard {
  private readonly jobs = new Map<string, LiveJob>();
  private readonly listeners = new Set<LiveListener>();
  private subscription: Subscription | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private filling: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(SchedulerViews) private readonly scheduler: Pick<SchedulerViews, 'activeJobs'>,
  ) {}

  start(): void {
    const subscription = this.bus.subscribe(subjects.jobEventsAll);
    this.subscription = subscription;
    void (async () => {
      for await (const m of subscription) {
        let data: unknown;
        try {
          data = m.json();
        } catch {
          continue;
        }
        const parsed = JobEvent.safeParse(data);
        if (parsed.success) this.apply(parsed.data);
      }
    })();
    this.sweeper = setInterval(() => this.sweep(Date.now()), 30_000);
    this.sweeper.unref();
    // Subscribed first: an event that comes while the scheduler answers is newer and wins (`apply`).
    void this.fill();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.filling);
    clearInterval(this.sweeper);
    this.subscription?.unsubscribe();
    this.listeners.clear();
  }

  /** `since`: when the job was submitted, when known (else when first seen). */
  apply(event: JobEvent, since?: number): void {
    const known = this.jobs.get(event.job);
    // Core NATS may reorder across publishers; the newest state wins.
    if (known && known.at > event.at) return;
    const job: LiveJob = {
      ...event,
      since: known?.since ?? since ?? event.at,
      ...(event.worker === undefined && known?.worker ? { worker: known.worker } : {}),
    };
    this.jobs.set(event.job, job);
    if (this.jobs.size > MAX_JOBS) this.sweep(Date.now());
    this.emit({ kind: 'job', job });
  }

  /** The scheduler's jobs not yet finished, onto the board; asked again later when it does not answer. */
  private async fill(): Promise<void> {
    const answer = await this.scheduler.activeJobs().catch((e: unknown) => ({ ok: false as const, error: String(e) }));
    if (this.stopped) return;
    if (!answer.ok) {
      this.filling = setTimeout(() => void this.fill(), FILL_RETRY_MS);
      this.filling.unref();
      return;
    }
    // The event's own fields only (the schema drops `submittedAt`), as events give them.
    for (const job of answer.value) this.apply(JobEvent.parse(job), job.submittedAt);
  }

  noteStored(build: string): void {
    this.emit({ kind: 'stored', build });
  }

  get(job: string): LiveJob | undefined {
    return this.jobs.get(job);
  }

  /** Jobs not yet finished, oldest first. */
  active(): LiveJob[] {
    return [...this.jobs.values()].filter((j) => !TERMINAL.includes(j.state)).sort((a, b) => a.since - b.since);
  }

  listen(listener: LiveListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(notice: LiveNotice): void {
    for (const listener of this.listeners) {
      try {
        listener(notice);
      } catch {
        // A listener is a page's connection; one failing must not stop the others.
      }
    }
  }

  private sweep(now: number): void {
    for (const [id, job] of this.jobs) {
      if (TERMINAL.includes(job.state) && now - job.at > KEEP_FINISHED_MS) this.jobs.delete(id);
    }
  }
}
