import { describe, expect, it } from 'vitest';
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

describe('the page cache', () => {
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
});
