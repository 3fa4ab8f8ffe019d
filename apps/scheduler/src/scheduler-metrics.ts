/** The scheduler's Prometheus metrics (queue lengths and states are read at scrape time). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { SchedulerCore } from './core/scheduler-core.js';

export class SchedulerMetrics {
  readonly assignmentLatency: Histogram;
  readonly affinity: Counter<'result'>;
  readonly lostRuns: Counter;
  readonly results: Counter<'state'>;

  constructor(registry: Registry, core: SchedulerCore) {
    this.assignmentLatency = new Histogram({
      name: 'cairn_scheduler_assignment_latency_seconds',
      help: 'Time from a job entering the queue to its assignment to a worker',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5, 30, 300],
      registers: [registry],
    });
    this.affinity = new Counter({
      name: 'cairn_scheduler_affinity_total',
      help: 'Assignments by cache affinity: hit (a worker holding the hint), miss (holders busy too long), none (no holder known)',
      labelNames: ['result'],
      registers: [registry],
    });
    this.lostRuns = new Counter({ name: 'cairn_scheduler_lost_runs_total', help: 'Runs lost to workers that died or dropped them', registers: [registry] });
    this.results = new Counter({ name: 'cairn_scheduler_results_total', help: 'Jobs finished, by final state', labelNames: ['state'], registers: [registry] });
    new Gauge({
      name: 'cairn_scheduler_queue_length',
      help: 'Queued jobs per pool',
      labelNames: ['pool'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [pool, length] of core.queueLengths()) this.set({ pool }, length);
      },
    });
    new Gauge({
      name: 'cairn_scheduler_oldest_queued_seconds',
      help: 'Age of the oldest queued job per pool, since it last entered the queue (0 when none waits)',
      labelNames: ['pool'],
      registers: [registry],
      collect() {
        this.reset();
        const now = Date.now();
        for (const [pool, age] of core.oldestQueuedAges(now)) this.set({ pool }, age / 1000);
      },
    });
    new Gauge({
      name: 'cairn_scheduler_jobs',
      help: 'Jobs known to the scheduler, by state',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const job of core.jobs.values()) counts.set(job.state, (counts.get(job.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'cairn_scheduler_workers',
      help: 'Workers per pool, connected or not',
      labelNames: ['pool', 'connected'],
      registers: [registry],
      collect() {
        this.reset();
        for (const w of core.workers.values()) this.inc({ pool: w.pool, connected: String(w.connected) });
      },
    });
    new Gauge({
      name: 'cairn_scheduler_worker_load',
      help: 'Running jobs / capacity per worker',
      labelNames: ['worker', 'pool'],
      registers: [registry],
      collect() {
        this.reset();
        for (const w of core.workers.values()) this.set({ worker: w.id, pool: w.pool }, w.running.length / w.capacity);
      },
    });
  }
}
