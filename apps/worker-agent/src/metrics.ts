import { Counter, Gauge, type Registry } from 'prom-client';

/** The worker's Prometheus metrics, on the service's shared registry (served at /metrics). */
export class AgentMetrics {
  readonly runningJobs: Gauge;
  readonly builds: Counter<'outcome'>;
  readonly steps: Counter<'cached'>;
  readonly pruneEvents: Counter;
  readonly prunedSnapshots: Counter;
  readonly freeBytes: Gauge;
  readonly refusing: Gauge;
  readonly rejectedAssignments: Counter<'reason'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.runningJobs = new Gauge({ name: 'cairn_worker_running_jobs', help: 'Builds running now', registers });
    this.builds = new Counter({ name: 'cairn_worker_builds_total', help: 'Finished builds by outcome', labelNames: ['outcome'], registers });
    this.steps = new Counter({
      name: 'cairn_worker_steps_total',
      help: 'Snapshot steps by whether they came from the cache',
      labelNames: ['cached'],
      registers,
    });
    this.pruneEvents = new Counter({ name: 'cairn_worker_prune_events_total', help: 'Times the store was pruned for low disk space', registers });
    this.prunedSnapshots = new Counter({ name: 'cairn_worker_pruned_snapshots_total', help: 'Snapshots deleted by pruning', registers });
    this.freeBytes = new Gauge({ name: 'cairn_worker_store_free_bytes', help: 'Free bytes where the store writes', registers });
    this.refusing = new Gauge({ name: 'cairn_worker_refusing', help: '1 while the worker refuses new jobs (low disk, draining)', registers });
    this.rejectedAssignments = new Counter({
      name: 'cairn_worker_rejected_assignments_total',
      help: 'Assignments refused, by reason',
      labelNames: ['reason'],
      registers,
    });
  }
}
