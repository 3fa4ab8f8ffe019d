/// <reference lib="dom" />
/**
 * Live logs on the real stack (issue 15): a build submitted with `cairn submit` runs on
 * a worker-agent (runc on btrfs) while its page follows the log in Chromium; the
 * results-store is stopped and started again mid-build, which cuts the page's stream.
 * The restarted service knows the running build from the scheduler (the board is not
 * empty), the page resumes the log where it was and shows every line once, and a
 * progress bar drawn with `\r` is one line, live and once stored. The log folds by the
 * steps the worker reported (issue 12), and the stored one keeps per-line times.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_IMAGE, POOL, startCluster, type Cluster } from '../support/cluster.js';
import { freePort } from '../support/ports.js';
import { launchChromium, spawnResultsStore, type ResultsStoreProcess } from '../support/results-store.js';

const LINES = 16;
// `\\r` in the spec is `\r` for printf: the bar redraws one line ten times.
const spec = String.raw`((from ${BASE_IMAGE})
 (shell /bin/sh -c)
 (run (shell "echo line-1; echo line-2; for i in 1 2 3 4 5 6 7 8 9 10; do printf '\\rprogress-%s' $i; sleep 0.1; done; echo; i=3; while [ $i -le ${LINES} ]; do echo line-$i; i=$((i+1)); sleep 0.8; done; sleep 20")))`;

describe('a live log across a restart of the results-store, on the real cluster', () => {
  let c: Cluster;
  let rs: ResultsStoreProcess;
  let dir: string;
  let env: Record<string, string>;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    c = await startCluster({ workers: 1 });
    dir = await mkdtemp(join(tmpdir(), 'cairn-dashboard-logs-'));
    env = { CAIRN_NATS: c.nats.url, CAIRN_RESULTS_DIR: dir, CAIRN_RESULTS_DB: join(dir, 'results.sqlite'), CAIRN_HTTP_PORT: String(await freePort()) };
    rs = await spawnResultsStore(env);
    browser = await launchChromium();
    page = await browser.newPage();
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    await rs?.stop();
    await c?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 120_000);

  it('resumes the cut stream with every line once; the board knows the build after the restart; a \\r bar is one line', async () => {
    const file = join(c.dir, 'ticker.spec');
    await writeFile(file, spec);
    const submitted = await c.cli(['submit', '--pool', POOL, '-f', file, '--json']);
    expect(submitted.code, submitted.stderr).toBe(0);
    const { job } = JSON.parse(submitted.stdout) as { job: string };

    await page.goto(`${rs.url}/builds/${job}`);
    await expect.poll(() => page.locator('#log').innerText(), { timeout: 60_000 }).toContain('line-4');

    await rs.stop();
    rs = await spawnResultsStore(env);
    // Filled from the scheduler: no job event has come since the service started.
    await expect.poll(async () => (await (await fetch(rs.url)).text()).includes(`<tr data-job="${job}"`), { timeout: 15_000 }).toBe(true);

    await expect.poll(() => page.locator('#log').innerText(), { timeout: 60_000 }).toContain(`line-${LINES}`);
    // Still the live page (the job sleeps before it ends): these lines came over the resumed stream.
    expect(await page.locator('#live-state').count()).toBe(1);
    const expected = ['line-1', 'line-2', 'progress-10', ...Array.from({ length: LINES - 2 }, (_, i) => `line-${i + 3}`)];
    const live = await page.locator('#log .l').evaluateAll((els) => els.map((e) => e.textContent ?? ''));
    expect(live.filter((l) => /^(line|progress)-/.test(l))).toEqual(expected);
    expect(await page.locator('#log details.step').count()).toBe(2);

    // Once stored, the same lines from the stored log. The live page's state says
    // succeeded first, and the page reloads itself into the stored one once the build is
    // stored (browser/app.ts): read only the stored page, which has no live state.
    await expect.poll(() => page.locator('h1').innerText(), { timeout: 90_000 }).toContain('succeeded');
    await expect.poll(() => page.locator('#live-state').count(), { timeout: 60_000 }).toBe(0);
    await page.waitForLoadState('load');
    expect(await page.locator('h1').innerText()).toContain('succeeded');
    const stored = await page.locator('#log .l').evaluateAll((els) => els.map((e) => e.textContent ?? ''));
    expect(stored.filter((l) => /^(line|progress)-/.test(l))).toEqual(expected);
    // Folded by the step boundaries the worker sent (issue 12), each step with how long it
    // took; every line keeps the time it was written, shown by the Times switch.
    const steps = await page.locator('#log details.step summary').allInnerTexts();
    expect(steps).toHaveLength(2);
    expect(steps[0]).toContain(`(from ${BASE_IMAGE}`);
    expect(steps[1]).toContain('(run (shell');
    expect(await page.locator('#log details.step .took').count()).toBe(2);
    expect(await page.locator('#log a.n[data-ts]').count()).toBe(await page.locator('#log a.n').count());
    await page.check('#log-times');
    expect(await page.locator('#log').getAttribute('class')).toContain('times');
  }, 240_000);
});
