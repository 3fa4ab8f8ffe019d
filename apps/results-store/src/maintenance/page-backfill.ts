/**
 * The page backfill: renders and saves the page of every build that has no current
 * saved copy (stored before pages were kept, or kept by an earlier renderer or for
 * another address), so that its first reader reads a file instead of waiting for a
 * render. Under load, first views of such builds missed the 50 ms p99 target.
 *
 * It is background work that readers must not feel:
 * - one build at a time, newest first (the builds people open), read in bounded batches
 *   (`batch` builds, four queries for the whole batch);
 * - before each build it lets the requests that arrived meanwhile run, and while
 *   readers are being served it also pauses `pauseMs`, which caps its share of the CPU
 *   (at full speed it would take most of a core and its queries a share of the
 *   database's);
 * - its position is saved after every batch (backfill-progress.ts): a restart resumes;
 * - /metrics shows it: builds by outcome, builds left in the pass, whether it runs.
 *
 * Builds stored while it runs need none of this: their pages are rendered when stored.
 */
import { Inject, Injectable, type LoggerService } from '@nestjs/common';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { RequestActivity } from '../ops/request-activity.js';
import { ResultsMetrics } from '../ops/results-metrics.js';
import { BuildQueries, type PageSource } from '../queries/build-queries.js';
import { CONFIG, LOGGER } from '../tokens.js';
import { BuildPages, type BackfillOutcome } from '../pages/build-pages.js';
import { BackfillProgress, backfillProgressPath, type BackfillPosition } from './backfill-progress.js';

/**
 * Readers count as being served when a request began or ended this recently. A second,
 * not less: traffic comes in bursts (a dashboard's page and its assets, the bench's
 * 200 requests at the start of every second), and a backfill that ran flat out in the
 * gaps between bursts created files fast enough to slow the file system for the next.
 */
const QUIET_MS = 1000;
/** Without a public URL, the address pages are rendered for is learnt from the first reader. */
const BASE_URL_POLL_MS = 2000;

export interface BackfillSettings {
  /** Builds read per batch; 0 switches the backfill off. */
  readonly batch: number;
  readonly pauseMs: number;
  /** After a failure (a batch that cannot be read, a page that cannot be saved), wait this long before going on. */
  readonly retryMs?: number;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));
/** Sleeps, cut short (without an error) when the backfill is stopped. */
const pause = (ms: number, signal: AbortSignal) => sleep(ms, undefined, { signal }).catch(() => undefined);

@Injectable()
export class PageBackfill {
  private pass: Promise<void> | undefined;
  private abort = new AbortController();
  private remaining = 0;
  private readonly progress: BackfillProgress;
  private readonly settings: BackfillSettings;

  constructor(
    @Inject(BuildQueries) private readonly queries: BuildQueries,
    @Inject(BuildPages) private readonly pages: BuildPages,
    @Inject(ResultsMetrics) private readonly metrics: ResultsMetrics,
    @Inject(RequestActivity) private readonly activity: Pick<RequestActivity, 'busy'>,
    @Inject(LOGGER) private readonly logger: LoggerService,
    @Inject(CONFIG) config: { readonly dataDir: string; readonly backfill: BackfillSettings },
  ) {
    this.progress = new BackfillProgress(backfillProgressPath(config.dataDir));
    this.settings = config.backfill;
  }

  /** Starts a pass in the background, unless one runs or the backfill is off. */
  start(): void {
    if (this.settings.batch <= 0 || this.pass) return;
    const abort = (this.abort = new AbortController());
    // Running from the moment it is started: a scrape before the first count must not read
    // "running 0, remaining 0" as "done".
    this.metrics.backfillRunning.set(1);
    this.pass = this.run(abort.signal)
      .catch((e: unknown) => this.logger.error(`page backfill stopped: ${message(e)}`))
      .finally(() => {
        this.metrics.backfillRunning.set(0);
        this.pass = undefined;
      });
  }

  /** Stops after the build in hand, with the position saved. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.pass;
  }

  /** Resolves when the pass under way ends (at once when none runs). */
  async finished(): Promise<void> {
    await this.pass;
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { queries, pages, progress, metrics, logger } = this;
    const baseUrl = await this.baseUrl(signal);
    if (baseUrl === undefined) return;
    const saved = await progress.load();
    // A pass for another renderer or address saved copies that are no longer served: start over.
    let position: BackfillPosition =
      saved && saved.renderer === pages.renderer && saved.baseUrl === baseUrl ? saved : { renderer: pages.renderer, baseUrl, done: false };
    if (position.done) {
      metrics.backfillRemaining.set(0);
      return;
    }
    this.setRemaining(await queries.countBuilds(position.older));
    logger.log(`page backfill: ${position.older ? 'resuming' : 'starting'}, ${this.remaining} build(s) to go through`);
    const started = Date.now();
    const outcomes: Record<BackfillOutcome | 'failed', number> = { saved: 0, current: 0, unsaved: 0, failed: 0 };
    while (!signal.aborted && !position.done) {
      let batch: PageSource[];
      try {
        batch = await queries.pageSources(position.older, this.settings.batch);
      } catch (e) {
        logger.error(`page backfill: reading builds: ${message(e)}; trying again in ${this.retryMs / 1000} s`);
        await pause(this.retryMs, signal);
        continue;
      }
      if (!batch.length) position = { ...position, done: true };
      for (const source of batch) {
        await this.giveWay(signal);
        if (signal.aborted) break;
        const outcome = await this.backfill(source, baseUrl, signal);
        outcomes[outcome]++;
        metrics.backfillBuilds.inc({ outcome });
        this.setRemaining(this.remaining - 1);
        position = { ...position, older: { at: source.build.finishedAt, id: source.build.id } };
      }
      await progress.save(position).catch((e: unknown) => logger.error(`page backfill: saving its position: ${message(e)}`));
    }
    if (position.done) {
      this.setRemaining(0);
      logger.log(
        `page backfill: done in ${((Date.now() - started) / 1000).toFixed(0)} s: ${outcomes.saved} saved, ${outcomes.current} already current, ${outcomes.unsaved} not kept (log missing), ${outcomes.failed} failed`,
      );
    }
  }

  private async backfill(source: PageSource, baseUrl: string, signal: AbortSignal): Promise<BackfillOutcome | 'failed'> {
    try {
      return await this.pages.backfill(source, baseUrl);
    } catch (e) {
      // The build's first reader renders it; waiting keeps a full disk from filling the log too.
      this.logger.error(`page backfill: build ${source.build.id}: ${message(e)}; going on in ${this.retryMs / 1000} s`);
      await pause(this.retryMs, signal);
      return 'failed';
    }
  }

  private async giveWay(signal: AbortSignal): Promise<void> {
    // Requests that arrived during the last build are answered before the next one.
    await nextTurn();
    // While readers are being served, one build per pause: slow, but never stopped by steady traffic.
    if (this.activity.busy(QUIET_MS)) await pause(this.settings.pauseMs, signal);
  }

  private async baseUrl(signal: AbortSignal): Promise<string | undefined> {
    for (;;) {
      const url = this.pages.defaultBaseUrl();
      if (url !== undefined || signal.aborted) return url;
      await pause(BASE_URL_POLL_MS, signal);
    }
  }

  private setRemaining(n: number): void {
    // Builds can be deleted under the pass; the count never goes below zero.
    this.remaining = Math.max(0, n);
    this.metrics.backfillRemaining.set(this.remaining);
  }

  private get retryMs(): number {
    return this.settings.retryMs ?? 30_000;
  }
}
