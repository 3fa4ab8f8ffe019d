/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import { connectBus } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import {
  ClusterStandIn,
  launchChromium,
  newJobId,
  sampleResult,
  schedulerStandIn,
  sha256Hex,
  startResultsStore,
  stepFinished,
  stepStarted,
  workerInfo,
  type ResultsStoreUnderTest,
} from '../../../test/support/results-store.js';

describe('the dashboard in a browser, fed over the bus as the cluster feeds it', () => {
  let nats: RunningNats;
  let rs: ResultsStoreUnderTest;
  let nc: NatsConnection;
  let cluster: ClusterStandIn;
  let browser: Browser;
  let page: Page;
  let stopScheduler: () => void;

  beforeAll(async () => {
    nats = await startNats();
    rs = await startResultsStore({ natsUrl: nats.url });
    nc = await connectBus({ servers: nats.url, name: 'test-cluster' });
    cluster = new ClusterStandIn(nc);
    stopScheduler = schedulerStandIn(nc, {
      pools: [{ pool: 'linux-x86_64', paused: false, queued: 1, running: 0, workers: 1 }],
      workers: [workerInfo()],
      queues: [{ pool: 'linux-x86_64', client: 'alice', urgent: 0, normal: 1 }],
    });
    browser = await launchChromium();
    page = await browser.newPage({ acceptDownloads: true });
    // A bound for a hang only: NATS, the service and Chromium start slowly on a busy machine.
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    stopScheduler?.();
    await nc?.close();
    await rs?.close();
    await nats?.stop();
  });

  it('shows a build queued, then running with its log tailing, then finished with artifacts whose checksums match', async () => {
    const job = { job: newJobId(), name: 'hello-live', client: 'alice', pool: 'linux-x86_64' };
    await page.goto(rs.url);
    await expect.poll(() => page.locator('h2#workers-title + div table').innerText()).toContain('w1');
    expect(await page.locator('#workers-title').isVisible()).toBe(true);
    // Give the page's event stream a moment to connect before the first event.
    await page.waitForFunction(() => document.querySelector('[data-live-board]') !== null);
    await new Promise((r) => setTimeout(r, 300));

    cluster.event(job, 'queued');
    await expect.poll(() => page.locator('#queued-rows').innerText(), { timeout: 10_000 }).toContain(job.job);
    cluster.event(job, 'running', { worker: 'w1' });
    await expect.poll(() => page.locator('#running-rows').innerText(), { timeout: 10_000 }).toContain(job.job);
    expect(await page.locator('#queued-rows').innerText()).not.toContain(job.job);

    await page.click(`#running-rows a[href="/builds/${job.job}"]`);
    await page.waitForURL(`**/builds/${job.job}`);
    await expect.poll(() => page.locator('#live-state').innerText()).toBe('running');

    await cluster.log(job.client, job.job, stepStarted('[1/2] (from busybox)'));
    await cluster.log(job.client, job.job, '[1/2] (from busybox)\n---> using "' + 'a'.repeat(64) + '" from cache\n');
    await cluster.log(job.client, job.job, stepFinished(true));
    await cluster.log(job.client, job.job, stepStarted('[2/2] /: (run (shell "make"))'));
    await cluster.log(job.client, job.job, '[2/2] /: (run (shell "make"))\n\x1b[32mcompiling\x1b[0m hello.c\n');
    await expect.poll(() => page.locator('#log').innerText(), { timeout: 10_000 }).toContain('compiling hello.c');
    // The colour survives as a class; the cached step is marked, with how long it took.
    expect(await page.locator('#log span.fg2').first().innerText()).toBe('compiling');
    expect(await page.locator('#log details.step.cached summary').first().innerText()).toMatch(/\(from busybox\) cache hit 1\.50 s$/);

    await cluster.log(job.client, job.job, 'linking\n');
    await expect.poll(() => page.locator('#log').innerText(), { timeout: 10_000 }).toContain('linking');

    const bin = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 256));
    const artifact = await cluster.artifact('/usr/local/bin/hello', bin);
    await cluster.log(job.client, job.job, `---> saved as "${'b'.repeat(64)}"\n`);
    await cluster.log(job.client, job.job, stepFinished(false, 'b'.repeat(64)), 'succeeded');
    cluster.event(job, 'succeeded', { worker: 'w1' });
    await cluster.result(sampleResult({ ...job, artifacts: [artifact] }));

    // The page notices the stored result and shows the finished build.
    await expect.poll(() => page.locator('h1').innerText(), { timeout: 15_000 }).toContain('succeeded');
    const cell = page.locator('td[data-sha256]');
    expect(await cell.innerText()).toBe(sha256Hex(bin));
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a[download][href*="/artifacts/"]')]);
    const chunks: Buffer[] = [];
    for await (const chunk of await download.createReadStream()) chunks.push(chunk as Buffer);
    expect(sha256Hex(Buffer.concat(chunks))).toBe(sha256Hex(bin));
    expect(download.suggestedFilename()).toBe('hello');
    // The stored log keeps the steps folded and the cache hit marked.
    expect(await page.locator('#log details.step').count()).toBe(2);
    expect(await page.locator('#log details.step.cached .hit').count()).toBe(1);
    expect(await page.locator('#log details.step[open]').count()).toBe(1);
    expect(await page.locator('#log details.step .took').allInnerTexts()).toEqual(['1.50 s', '1.50 s']);
    // With the times of its lines, behind the Times switch.
    expect(await page.locator('#L1 a.n').getAttribute('data-ts')).toMatch(/^\d\d:\d\d:\d\d\.\d{3}$/);
    expect(await page.locator('#log').getAttribute('class')).not.toContain('times');
    await page.check('#log-times');
    expect(await page.locator('#log').getAttribute('class')).toContain('times');
  });

  it('compares two builds and points at the step that changed', async () => {
    const first = sampleResult({ name: 'compared' });
    const second = sampleResult({
      name: 'compared',
      finishedAt: first.finishedAt + 60_000,
      spec: '((from busybox)\n (run (shell "echo bye > /hello")))',
      steps: [
        { stage: '', op: '(from busybox)', id: 'a'.repeat(64), cached: true, ms: 2 },
        { stage: '', op: '(run (shell "echo bye > /hello"))', id: 'c'.repeat(64), cached: false, ms: 300 },
      ],
    });
    await cluster.result(first);
    await cluster.result(second);
    await expect.poll(async () => (await fetch(`${rs.url}/api/v1/builds/${second.job}`)).status, { timeout: 15_000 }).toBe(200);
    await expect.poll(async () => (await fetch(`${rs.url}/api/v1/builds/${first.job}`)).status, { timeout: 15_000 }).toBe(200);

    await page.goto(`${rs.url}/builds/${second.job}`);
    await page.click('text=with the previous build of this job');
    await page.waitForURL(/\/compare\?/);
    const changed = page.locator('#steps tr.first-change');
    expect(await changed.innerText()).toContain('echo bye');
    expect(await page.locator('#steps tr[data-changed="no"]').innerText()).toContain('(from busybox)');
    expect(await page.locator('pre.diff .del').innerText()).toContain('echo hello');
    expect(await page.locator('pre.diff .add').innerText()).toContain('echo bye');
  });

  it('is usable on a phone-sized screen with landmarks and labelled filters', async () => {
    const phone = await browser.newPage({ viewport: { width: 375, height: 700 } });
    await phone.goto(`${rs.url}/builds`);
    expect(await phone.locator('main').count()).toBe(1);
    expect(await phone.locator('nav[aria-label="Main"]').count()).toBe(1);
    // Every form control has a label.
    const unlabelled = await phone.evaluate(() =>
      [...document.querySelectorAll('input, select')].filter((el) => !(el as HTMLInputElement).labels?.length).map((el) => el.outerHTML),
    );
    expect(unlabelled).toEqual([]);
    // Nothing wider than the screen: tables scroll inside their own box.
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await phone.close();
  });
});
