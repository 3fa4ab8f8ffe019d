/**
 * The results-store's own Prometheus metrics, on the registry service-kit's /metrics
 * serves: how fast results come in, how far behind the stream the store is, how long
 * the database takes, how much the blob store holds, and how far the page backfill is.
 */
import { Inject, Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

@Injectable()
export class ResultsMetrics {
  readonly ingested: Counter<'source' | 'outcome'>;
  readonly ingestFailures: Counter<'source'>;
  /** From a build's finish to its row being committed. */
  readonly ingestLag: Histogram<'source'>;
  /** Results in the stream not yet stored (the durable consumer's pending count). */
  readonly backlog: Gauge;
  readonly dbLatency: Histogram<'operation'>;
  readonly storageBytes: Gauge;
  readonly blobs: Gauge;
  readonly hookRuns: Counter<'outcome'>;
  readonly httpLatency: Histogram<'route'>;
  /** Builds the page backfill went through, by what it found or did (saved, current, unsaved, failed). */
  readonly backfillBuilds: Counter<'outcome'>;
  /** Builds the backfill's current pass has yet to go through (0 once done). */
  readonly backfillRemaining: Gauge;
  /** 1 while a backfill pass runs, 0 otherwise. */
  readonly backfillRunning: Gauge;

  constructor(@Inject(Registry) registry: Registry) {
    this.ingested = new Counter({
      name: 'cairn_results_ingested_total',
      help: 'Results handled, by source and outcome (stored, duplicate)',
      labelNames: ['source', 'outcome'],
      registers: [registry],
    });
    this.ingestFailures = new Counter({
      name: 'cairn_results_ingest_failures_total',
      help: 'Results that could not be stored (retried later when from the stream)',
      labelNames: ['source'],
      registers: [registry],
    });
    this.ingestLag = new Histogram({
      name: 'cairn_results_ingest_lag_seconds',
      help: 'Time from a build finishing to its result being stored',
      labelNames: ['source'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    });
    this.backlog = new Gauge({ name: 'cairn_results_backlog', help: 'Results waiting in the stream for this store', registers: [registry] });
    this.dbLatency = new Histogram({
      name: 'cairn_results_db_seconds',
      help: 'Database time by operation',
      labelNames: ['operation'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    });
    this.storageBytes = new Gauge({ name: 'cairn_results_storage_bytes', help: 'Bytes in the blob store', registers: [registry] });
    this.blobs = new Gauge({ name: 'cairn_results_blobs', help: 'Blobs in the blob store', registers: [registry] });
    this.hookRuns = new Counter({ name: 'cairn_results_hook_runs_total', help: 'Upload hook runs by outcome', labelNames: ['outcome'], registers: [registry] });
    this.httpLatency = new Histogram({
      name: 'cairn_results_http_seconds',
      help: 'Time to answer a page or API request',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    });
    this.backfillBuilds = new Counter({
      name: 'cairn_results_page_backfill_builds_total',
      help: 'Builds the page backfill went through: saved (rendered and kept now), current (a current copy was kept), unsaved (log blob missing), failed',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.backfillRemaining = new Gauge({
      name: 'cairn_results_page_backfill_remaining',
      help: 'Builds the page backfill has yet to go through in its current pass',
      registers: [registry],
    });
    this.backfillRunning = new Gauge({ name: 'cairn_results_page_backfill_running', help: '1 while the page backfill runs a pass', registers: [registry] });
  }

  async timeDb<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const end = this.dbLatency.startTimer({ operation });
    try {
      return await work();
    } finally {
      end();
    }
  }
}
