/**
 * What a newly stored build changes beyond the database: list pages rendered before it
 * are dropped, the live board marks the build stored (its live page reloads into the
 * stored one), and its page is rendered ahead of the first reader.
 */
import { Inject, Injectable, type LoggerService } from '@nestjs/common';
import type { BuildId } from './ids.js';
import type { StoredListener } from './ingest/ingest.js';
import { LiveBoard } from './live/live-board.js';
import { LOGGER } from './tokens.js';
import { BuildPages } from './pages/build-pages.js';
import { PageCache } from './http/page-cache.js';

@Injectable()
export class StoredBuildFanout implements StoredListener {
  constructor(
    @Inject(PageCache) private readonly pages: PageCache,
    @Inject(LiveBoard) private readonly live: LiveBoard,
    @Inject(BuildPages) private readonly buildPages: BuildPages,
    @Inject(LOGGER) private readonly logger: LoggerService,
  ) {}

  stored(build: BuildId): void {
    this.pages.clear();
    this.live.noteStored(build);
    // In the background: storing is done, and a failure here only means the first reader renders the page.
    void this.buildPages
      .prerender(build)
      .catch((e: unknown) => this.logger.error(`rendering the page of build ${build}: ${e instanceof Error ? e.message : String(e)}`));
  }
}
