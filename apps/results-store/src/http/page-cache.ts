/**
 * Rendered pages kept for a moment: under load, a list page is rendered once per
 * second rather than once per request, and a finished build's page (which changes only
 * when it is tagged) once a minute. Entries hold the page and, once asked for, its gzip
 * form. Storing a build or changing a tag empties the cache, so a page is at most a
 * second (and one render) stale on the replica that stored the build.
 *
 * When an entry expires, the requests that arrive while it is being rendered again wait
 * for that one render instead of each rendering it: on PostgreSQL a render waits on
 * another process, so at 200 requests/s several requests used to miss together and run
 * the same queries side by side on two cores, once a second.
 */
import { gzipSync } from 'node:zlib';
import { Injectable } from '@nestjs/common';

export interface CachedPage {
  readonly body: Buffer;
  gzip?: Buffer;
  readonly status: number;
  readonly expires: number;
}

const MAX_ENTRIES = 2000;
/** How long after it expires a page may still be sent while the next one is rendered. */
const STALE_MS = 5000;

@Injectable()
export class PageCache {
  private readonly pages = new Map<string, CachedPage>();
  private readonly rendering = new Map<string, Promise<CachedPage>>();
  /** Bumped by `clear`: a render that began before it is sent but not kept. */
  private generation = 0;

  get(key: string, now = Date.now()): CachedPage | undefined {
    const page = this.pages.get(key);
    if (!page) return undefined;
    if (page.expires <= now) {
      this.pages.delete(key);
      return undefined;
    }
    return page;
  }

  set(key: string, body: string | Buffer, status: number, ttlMs: number, gzip?: Buffer): CachedPage {
    if (this.pages.size >= MAX_ENTRIES) {
      // Oldest first: a Map iterates in insertion order.
      for (const k of [...this.pages.keys()].slice(0, MAX_ENTRIES / 4)) this.pages.delete(k);
    }
    const page: CachedPage = {
      body: typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
      status,
      expires: Date.now() + ttlMs,
      ...(gzip ? { gzip } : {}),
    };
    this.pages.set(key, page);
    return page;
  }

  /**
   * The page under `key`: kept, being rendered by an earlier request (shared), or
   * rendered now by `render`, which says how long its result may be kept (0: not at all).
   *
   * A page that expired less than STALE_MS ago (and was not cleared) is still sent while
   * its successor is rendered: a list page's render waits on the database, and every
   * request arriving meanwhile used to wait with it, once per second per page under load.
   */
  async getOrRender(key: string, render: () => Promise<{ body: string | Buffer; gzip?: Buffer; status?: number; ttlMs: number }>): Promise<CachedPage> {
    const now = Date.now();
    const kept = this.pages.get(key);
    if (kept && kept.expires > now) return kept;
    const rendering = this.rendering.get(key) ?? this.render(key, render);
    if (kept && kept.expires + STALE_MS > now) {
      // Its failure reaches no one here: the next request renders again.
      rendering.catch(() => undefined);
      return kept;
    }
    return rendering;
  }

  private render(key: string, render: () => Promise<{ body: string | Buffer; gzip?: Buffer; status?: number; ttlMs: number }>): Promise<CachedPage> {
    const generation = this.generation;
    const rendered = render().then((page) => {
      const status = page.status ?? 200;
      if (page.ttlMs > 0 && generation === this.generation) return this.set(key, page.body, status, page.ttlMs, page.gzip);
      return {
        body: typeof page.body === 'string' ? Buffer.from(page.body, 'utf8') : page.body,
        status,
        expires: 0,
        ...(page.gzip ? { gzip: page.gzip } : {}),
      };
    });
    this.rendering.set(key, rendered);
    const done = () => {
      if (this.rendering.get(key) === rendered) this.rendering.delete(key);
    };
    rendered.then(done, done);
    return rendered;
  }

  gzipOf(page: CachedPage): Buffer {
    page.gzip ??= gzipSync(page.body, { level: 6 });
    return page.gzip;
  }

  clear(): void {
    this.pages.clear();
    // Later requests must not wait for a render that may predate what cleared the cache.
    this.rendering.clear();
    this.generation++;
  }
}
