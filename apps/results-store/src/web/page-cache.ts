/**
 * Rendered pages kept for a moment: under load, a list page is rendered once per
 * second rather than once per request, and a finished build's page (which changes only
 * when it is tagged) once a minute. Entries hold the page and, once asked for, its gzip
 * form. Storing a build or changing a tag empties the cache, so a page is at most a
 * second stale on the replica that stored the build.
 */
import { gzipSync } from 'node:zlib';

export interface CachedPage {
  readonly body: Buffer;
  gzip?: Buffer;
  readonly status: number;
  readonly expires: number;
}

const MAX_ENTRIES = 2000;

export class PageCache {
  private readonly pages = new Map<string, CachedPage>();

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
    const page: CachedPage = { body: typeof body === 'string' ? Buffer.from(body, 'utf8') : body, status, expires: Date.now() + ttlMs, ...(gzip ? { gzip } : {}) };
    this.pages.set(key, page);
    return page;
  }

  gzipOf(page: CachedPage): Buffer {
    page.gzip ??= gzipSync(page.body, { level: 6 });
    return page.gzip;
  }

  clear(): void {
    this.pages.clear();
  }
}
