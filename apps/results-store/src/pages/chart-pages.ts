/**
 * The charts pages, made off the request thread. A 30-day page reads ~20,000 rollup rows
 * and draws ~600 KB of SVG: 50-200 ms of work which, on SQLite (synchronous, on the
 * event loop), held every request that arrived meanwhile, and made a 200 requests/s
 * burst miss its 50 ms p99 each time the page expired. So one worker thread, with its
 * own connection, makes the pages (chart-worker.ts), and requests are answered from the
 * last page made: once it is older than its range's refresh interval, the next request
 * asks for a new one and is still answered from the old. Only a range's very first
 * request waits for its page.
 */
import { Worker } from 'node:worker_threads';
import { Inject, Injectable, Optional, type LoggerService } from '@nestjs/common';
import { CONFIG, LOGGER } from '../tokens.js';
import { workerEntry } from '../worker-threads.js';
import type { Range } from '../rollups/chart-data.js';
import type { ChartReply, ChartTask, ChartWorkerData } from './chart-worker.js';
import type { PageBytes } from './prerendered-pages.js';

/** How old a range's page may get before a request asks for a new one: the rollups change by the minute (per hour beyond a day). */
const CHART_REFRESH_MS: Record<Range, number> = { '1h': 5000, '24h': 30_000, '7d': 60_000, '30d': 60_000 };
/** A page not made in this time is given up on, and the worker (stuck on a locked database, say) replaced. */
const RENDER_TIMEOUT_MS = 30_000;
/** Pages kept (ranges x pools): beyond it, the whole set is dropped and made again on demand. */
const MAX_KEPT = 1000;

export interface ChartPagesConfig {
  readonly database: string;
  readonly chartRefreshMs?: Partial<Record<Range, number>>;
}

interface Kept {
  readonly page: PageBytes;
  /** When the page was made, or when making its successor last failed (so a failing database is asked once per interval). */
  madeAt: number;
}

type Pending = { resolve: (page: PageBytes) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

@Injectable()
export class ChartPages {
  private readonly kept = new Map<string, Kept>();
  private readonly making = new Map<string, Promise<PageBytes>>();
  private readonly pending = new Map<number, Pending>();
  private worker?: Worker;
  private seq = 0;
  private closed = false;

  constructor(
    @Inject(CONFIG) private readonly config: ChartPagesConfig,
    @Optional() @Inject(LOGGER) private readonly logger?: Pick<LoggerService, 'warn'>,
  ) {}

  /** The page of `range` (of one pool when given): the last one made, or, for a range's first request, a new one. */
  async get(range: Range, pool?: string): Promise<PageBytes> {
    const key = `${range} ${pool ?? ''}`;
    const kept = this.kept.get(key);
    const now = Date.now();
    if (kept && now - kept.madeAt < (this.config.chartRefreshMs?.[range] ?? CHART_REFRESH_MS[range])) return kept.page;
    const making = this.making.get(key) ?? this.make(key, range, pool, kept);
    return kept ? kept.page : making;
  }

  /** Ends the worker; pages being made fail. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.lose(worker, 'the results-store is stopping');
    await worker?.terminate();
  }

  private make(key: string, range: Range, pool: string | undefined, kept: Kept | undefined): Promise<PageBytes> {
    const started = Date.now();
    const making = this.render({ range, ...(pool === undefined ? {} : { pool }), now: started }).then(
      (page) => {
        if (this.kept.size >= MAX_KEPT) this.kept.clear();
        this.kept.set(key, { page, madeAt: started });
        return page;
      },
      (e: Error) => {
        if (!kept) throw e;
        // Readers keep the page they have; the next try waits an interval.
        kept.madeAt = Date.now();
        this.logger?.warn(`charts ${key.trim()}: a new page could not be made, the one from ${new Date(started).toISOString()} stays: ${e.message}`);
        return kept.page;
      },
    );
    this.making.set(key, making);
    void making.finally(() => this.making.delete(key)).catch(() => undefined);
    return making;
  }

  private render(task: Omit<ChartTask, 'seq'>): Promise<PageBytes> {
    return new Promise<PageBytes>((resolve, reject) => {
      if (this.closed) return reject(new Error('the results-store is stopping'));
      const worker = (this.worker ??= this.spawn());
      const seq = ++this.seq;
      const timer = setTimeout(() => {
        // Stuck: every page asked of this worker fails, and the next request starts another.
        this.lose(worker, `no page in ${RENDER_TIMEOUT_MS / 1000} s`);
        void worker.terminate();
      }, RENDER_TIMEOUT_MS).unref();
      this.pending.set(seq, { resolve, reject, timer });
      worker.postMessage({ seq, ...task } satisfies ChartTask);
    }).catch((e: Error) => {
      throw new Error(`charts of ${task.range}${task.pool ? ` of pool ${task.pool}` : ''}: ${e.message}`, { cause: e });
    });
  }

  private spawn(): Worker {
    const { url, execArgv } = workerEntry(import.meta.url, 'chart-worker');
    const worker = new Worker(url, {
      ...(execArgv ? { execArgv } : {}),
      workerData: { database: this.config.database } satisfies ChartWorkerData,
      resourceLimits: { maxOldGenerationSizeMb: 256 },
    });
    // An idle worker must not keep a stopping process alive.
    worker.unref();
    worker.on('message', (reply: ChartReply) => {
      const pending = this.pending.get(reply.seq);
      if (!pending) return;
      this.pending.delete(reply.seq);
      clearTimeout(pending.timer);
      if ('error' in reply) pending.reject(new Error(reply.error));
      else
        pending.resolve({
          body: Buffer.from(reply.body.buffer, reply.body.byteOffset, reply.body.byteLength),
          gzip: Buffer.from(reply.gzip.buffer, reply.gzip.byteOffset, reply.gzip.byteLength),
        });
    });
    worker.on('error', (e) => this.lose(worker, `the worker thread failed: ${e.message}`));
    worker.on('exit', (code) => this.lose(worker, `the worker thread exited with ${code}`));
    return worker;
  }

  /** Fails every page asked of `worker`, which is not asked again. */
  private lose(worker: Worker | undefined, why: string): void {
    if (!worker || this.worker !== worker) return;
    this.worker = undefined;
    for (const [seq, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new Error(why));
      this.pending.delete(seq);
    }
  }
}
