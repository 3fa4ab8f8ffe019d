/// <reference lib="dom" />
/**
 * The results-store's acceptance on the real stack: a build submitted with `cairn submit`
 * goes through the spec-compiler, the scheduler and a worker-agent running runc on btrfs,
 * and the dashboard in headless Chromium shows it queued, running with its log tailing
 * live, then finished with an artifact whose download matches its checksum; a second
 * build of the same job with one step changed is compared with the first.
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_IMAGE, POOL, startCluster, type Cluster } from '../support/cluster.js';
import { launchChromium, startResultsStore, type ResultsStoreUnderTest } from '../support/results-store.js';

const spec = (last: string) => `((from ${BASE_IMAGE})
 (shell /bin/sh -c)
 (run (shell "mkdir -p /out && echo prepared"))
 (run (shell "for i in 1 2 3 4 5 6; do echo tick-$i; sleep 0.5; done; echo ${last} > /out/hello.txt")))`;

describe('the dashboard over the real cluster', () => {
  let c: Cluster;
  let rs: ResultsStoreUnderTest;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    c = await startCluster({ workers: 1 });
    rs = await startResultsStore({ natsUrl: c.nats.url });
    browser = await launchChromium();
    page = await browser.newPage({ acceptDownloads: true });
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    await rs?.close();
    await c?.stop();
  });

  it('shows a submitted build queued, running with its log live, finished with a matching artifact; compare shows the changed step', async () => {
    const file = join(c.dir, 'hello-dashboard.spec');
    await writeFile(file, spec('first'));
    await page.goto(rs.url);
    await expect.poll(() => page.locator('h2#workers-title + div table').innerText(), { timeout: 15_000 }).toContain('w1');
    await page.waitForFunction(() => document.querySelector('[data-live-board]') !== null);
    await new Promise((r) => setTimeout(r, 300));

    // Paused pool: the job waits in the queue where the page can see it.
    expect((await c.cli(['admin', 'pool', 'pause', POOL])).code).toBe(0);
    const submitted = await c.cli(['submit', '--pool', POOL, '-f', file, '--output', '/out/hello.txt', '--json']);
    expect(submitted.code).toBe(0);
    const { job } = JSON.parse(submitted.stdout) as { job: string };
    await expect.poll(() => page.locator('#queued-rows').innerText(), { timeout: 15_000 }).toContain(job);

    expect((await c.cli(['admin', 'pool', 'unpause', POOL])).code).toBe(0);
    await expect.poll(() => page.locator('#running-rows').innerText(), { timeout: 15_000 }).toContain(job);
    await page.click(`#running-rows a[href="/builds/${job}"]`);
    await page.waitForURL(`**/builds/${job}`);
    // The log tails while the build runs: early ticks show before the build has finished.
    await expect.poll(() => page.locator('#log').innerText(), { timeout: 15_000 }).toContain('tick-2');
    expect(await page.locator('#live-state').innerText()).toBe('running');

    await expect.poll(() => page.locator('h1').innerText(), { timeout: 60_000 }).toContain('succeeded');
    const expected = createHash('sha256').update('first\n').digest('hex');
    expect(await page.locator('td[data-sha256]').innerText()).toBe(expected);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a[download][href*="/artifacts/"]')]);
    const chunks: Buffer[] = [];
    for await (const chunk of await download.createReadStream()) chunks.push(chunk as Buffer);
    expect(createHash('sha256').update(Buffer.concat(chunks)).digest('hex')).toBe(expected);

    // The same job again with its last step changed.
    await writeFile(file, spec('second'));
    const again = await c.cli(['submit', '--pool', POOL, '-f', file, '--output', '/out/hello.txt', '--follow', '--json']);
    expect(again.code).toBe(0);
    const second = (JSON.parse(again.stdout) as { job: string }).job;
    await expect.poll(async () => (await fetch(`${rs.url}/api/v1/builds/${second}`)).status, { timeout: 30_000 }).toBe(200);
    await page.goto(`${rs.url}/builds/${second}`);
    await page.click('text=with the previous build of this job');
    await page.waitForURL(/\/compare\?/);
    expect(await page.locator('#steps tr.first-change').innerText()).toContain('echo second');
    expect((await page.locator('#steps tr[data-changed="no"]').allInnerTexts()).join('\n')).toContain('echo prepared');
  });
});
