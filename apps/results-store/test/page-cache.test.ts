import { afterEach, describe, expect, it, vi } from 'vitest';
import { PageCache } from '../src/http/page-cache.js';

/** A render that finishes when told to, counting how often it ran. */
function slowRender(body: string, ttlMs = 1000) {
  const state = { runs: 0, finish: (): void => undefined, fail: (_e: Error): void => undefined };
  const render = () => {
    state.runs++;
    return new Promise<{ body: string; ttlMs: number }>((resolve, reject) => {
      state.finish = () => resolve({ body, ttlMs });
      state.fail = reject;
    });
  };
  return { state, render };
}

/** Lets the promise callbacks queued so far run. */
const settled = () => new Promise((r) => setTimeout(r, 0));

/** Moves the cache's clock (Date.now) on by `ms`. */
function later(ms: number): void {
  const now = Date.now() + ms;
  vi.spyOn(Date, 'now').mockReturnValue(now);
}

describe('the page cache', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('renders a page once for the requests that arrive while it is being rendered, then keeps it', async () => {
    const cache = new PageCache();
    const { state, render } = slowRender('list page');
    const waiting = [cache.getOrRender('builds /builds', render), cache.getOrRender('builds /builds', render), cache.getOrRender('builds /builds', render)];
    state.finish();
    const pages = await Promise.all(waiting);
    expect(state.runs).toBe(1);
    expect(pages.map((p) => p.body.toString())).toEqual(['list page', 'list page', 'list page']);
    expect((await cache.getOrRender('builds /builds', render)).body.toString()).toBe('list page');
    expect(state.runs).toBe(1);
  });

  it('does not share or keep a render that began before the cache was cleared', async () => {
    const cache = new PageCache();
    const before = slowRender('without the new build');
    const first = cache.getOrRender('k', before.render);
    // A build is stored meanwhile.
    cache.clear();
    const after = slowRender('with the new build');
    const second = cache.getOrRender('k', after.render);
    expect(after.state.runs).toBe(1);
    after.state.finish();
    before.state.finish();
    expect((await first).body.toString()).toBe('without the new build');
    expect((await second).body.toString()).toBe('with the new build');
    expect(cache.get('k')?.body.toString()).toBe('with the new build');
  });

  it('gives a failed render’s error to every request waiting for it, and renders again for the next', async () => {
    const cache = new PageCache();
    const failing = slowRender('never');
    const waiting = [cache.getOrRender('k', failing.render), cache.getOrRender('k', failing.render)];
    failing.state.fail(new Error('job not found'));
    for (const w of waiting) await expect(w).rejects.toThrow('job not found');
    const next = slowRender('found');
    const page = cache.getOrRender('k', next.render);
    next.state.finish();
    expect((await page).body.toString()).toBe('found');
  });

  it('does not keep a page rendered with no time to live', async () => {
    const cache = new PageCache();
    const live = slowRender('a running build', 0);
    const page = cache.getOrRender('k', live.render);
    live.state.finish();
    expect((await page).body.toString()).toBe('a running build');
    expect(cache.get('k')).toBeUndefined();
  });

  it('sends a page that just expired while one render makes its successor, and waits for a render once the page is long expired', async () => {
    const cache = new PageCache();
    const first = slowRender('first', 1000);
    const page = cache.getOrRender('k', first.render);
    first.state.finish();
    expect((await page).body.toString()).toBe('first');
    later(1500);
    const second = slowRender('second', 1000);
    // Expired half a second ago: sent at once, and only one render of its successor starts.
    expect((await cache.getOrRender('k', second.render)).body.toString()).toBe('first');
    expect((await cache.getOrRender('k', second.render)).body.toString()).toBe('first');
    expect(second.state.runs).toBe(1);
    second.state.finish();
    await settled();
    expect((await cache.getOrRender('k', second.render)).body.toString()).toBe('second');
    expect(second.state.runs).toBe(1);
    // A failed render leaves the expired page sent, and the next request tries again.
    later(1500);
    const failing = slowRender('never', 1000);
    expect((await cache.getOrRender('k', failing.render)).body.toString()).toBe('second');
    failing.state.fail(new Error('database gone'));
    await settled();
    expect((await cache.getOrRender('k', failing.render)).body.toString()).toBe('second');
    expect(failing.state.runs).toBe(2);
    failing.state.fail(new Error('database gone'));
    await settled();
    // Long expired: the request waits for the new page.
    later(60_000);
    const late = slowRender('late', 1000);
    const waited = cache.getOrRender('k', late.render);
    late.state.finish();
    expect((await waited).body.toString()).toBe('late');
  });

  it('never sends a page from before the cache was cleared, however recently it expired', async () => {
    const cache = new PageCache();
    const before = slowRender('without the new build', 1000);
    const page = cache.getOrRender('k', before.render);
    before.state.finish();
    await page;
    cache.clear();
    later(1500);
    const after = slowRender('with the new build', 1000);
    const waited = cache.getOrRender('k', after.render);
    after.state.finish();
    expect((await waited).body.toString()).toBe('with the new build');
  });
});
