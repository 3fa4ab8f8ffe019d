/// <reference lib="dom" />
/**
 * The dashboard across a results-store restart, in Chromium (issue 15): the live board
 * is filled from the scheduler's state when the service starts, not only by events that
 * come later; a live log whose stream is cut (the service stopped) and resumed shows
 * every line once; a `\r` progress bar is one line; a line's permalink scrolls to it and
 * highlights it; search walks the matches; the light/dark choice is remembered; list
 * times read "… ago" with the exact UTC time on hover. Also writes the screenshots of
 * the dashboard and of a build page that docs/screenshots keeps (the README shows them).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectBus } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { freePort } from '../../../test/support/ports.js';
import {
  ClusterStandIn,
  launchChromium,
  newJobId,
  sampleResult,
  schedulerStandIn,
  spawnResultsStore,
  stepFinished,
  stepStarted,
  workerInfo,
  type ResultsStoreProcess,
} from '../../../test/support/results-store.js';

const SCREENSHOTS = fileURLToPath(new URL('../../../docs/screenshots/', import.meta.url));
const POOL = 'linux-x86_64';

describe('the dashboard across a restart of the results-store', () => {
  let nats: RunningNats;
  let nc: NatsConnection;
  let cluster: ClusterStandIn;
  let dir: string;
  let env: Record<string, string>;
  let rs: ResultsStoreProcess;
  let browser: Browser;
  let page: Page;
  let stopScheduler: () => void;
  const queued = { job: newJobId(), name: 'docs-site', client: 'alice', pool: POOL };
  const running = { job: newJobId(), name: 'compiler-bootstrap', client: 'bob', pool: POOL };

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectBus({ servers: nats.url, name: 'test-cluster' });
    cluster = new ClusterStandIn(nc);
    const now = Date.now();
    // The scheduler knows these jobs; no event about them comes while the test runs.
    stopScheduler = schedulerStandIn(nc, {
      pools: [{ pool: POOL, paused: false, queued: 1, running: 1, workers: 1 }],
      workers: [workerInfo({ pool: POOL, running: [running.job], lastSeen: now })],
      queues: [{ pool: POOL, client: 'alice', urgent: 0, normal: 1 }],
      jobs: [
        { ...running, state: 'running', worker: 'w1', at: now, submittedAt: now - 95_000 },
        { ...queued, state: 'queued', at: now, submittedAt: now - 20_000 },
      ],
    });
    dir = await mkdtemp(join(tmpdir(), 'cairn-log-tools-'));
    // The same port across the restart: the page's event streams reconnect to it.
    env = { CAIRN_NATS: nats.url, CAIRN_RESULTS_DIR: dir, CAIRN_RESULTS_DB: join(dir, 'results.sqlite'), CAIRN_HTTP_PORT: String(await freePort()) };
    rs = await spawnResultsStore(env);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    stopScheduler?.();
    await rs?.stop();
    await nc?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('fills the live board from the scheduler when it starts', async () => {
    await page.goto(rs.url);
    await expect.poll(() => page.locator('#queued-rows').innerText(), { timeout: 15_000 }).toContain(queued.job);
    expect(await page.locator('#running-rows').innerText()).toContain(running.job);
    // Since when: relative, with the exact UTC time on hover.
    const since = page.locator(`#running-rows tr[data-job="${running.job}"] time`);
    expect(await since.innerText()).toMatch(/^(1|2) min ago$/);
    expect(await since.getAttribute('title')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  });

  it('resumes a cut live log without repeating a line; a progress bar is one line', async () => {
    const { job, client } = running;
    await cluster.log(client, job, '[1/2] (from busybox)\n---> using "' + 'a'.repeat(64) + '" from cache\n[2/2] /: (run (shell "make"))\n');
    const bar = Array.from({ length: 21 }, (_, i) => `\rdownloading [${'='.repeat(i).padEnd(20)}] ${i * 5}%`).join('');
    await cluster.log(client, job, `line-1\nline-2\n${bar}\nline-3\n`);
    await page.goto(`${rs.url}/builds/${job}`);
    await expect.poll(() => page.locator('#log').innerText(), { timeout: 15_000 }).toContain('line-3');

    // The stream is cut: the service stops; the job goes on writing; the service comes back.
    await rs.stop();
    await cluster.log(client, job, 'line-4\nline-5\n');
    rs = await spawnResultsStore(env);
    await cluster.log(client, job, 'line-6\n');
    await expect.poll(() => page.locator('#log').innerText(), { timeout: 30_000 }).toContain('line-6');

    const lines = await page.locator('#log .l').evaluateAll((els) => els.map((e) => e.textContent));
    expect(lines).toEqual([
      '[1/2] (from busybox)',
      `---> using "${'a'.repeat(64)}" from cache`,
      '[2/2] /: (run (shell "make"))',
      'line-1',
      'line-2',
      `downloading [${'='.repeat(20)}] 100%`,
      'line-3',
      'line-4',
      'line-5',
      'line-6',
    ]);
    // Numbered 1 to 10, each once.
    expect(await page.locator('#log a.n').evaluateAll((els) => els.map((e) => e.getAttribute('data-n')))).toEqual(
      Array.from({ length: 10 }, (_, i) => String(i + 1)),
    );
    // Per-line times, shown on demand.
    expect(await page.locator('#L4 a.n').getAttribute('data-ts')).toMatch(/^\d\d:\d\d:\d\d\.\d{3}$/);
    await page.check('#log-times');
    expect(await page.locator('#log').getAttribute('class')).toContain('times');
  });

  it('scrolls to and highlights a permalinked line, and a range; search walks the matches', async () => {
    const text = Array.from({ length: 300 }, (_, i) => `output line ${i + 1}${i % 100 === 41 ? ' warning: something' : ''}\n`).join('');
    const result = sampleResult({ name: 'long-log', state: 'failed', failure: 'step 2: exit 1' });
    await cluster.log(result.client, result.job, stepStarted('(from busybox)'));
    await cluster.log(result.client, result.job, '(from busybox)\n');
    await cluster.log(result.client, result.job, stepFinished(true));
    await cluster.log(result.client, result.job, stepStarted('/: (run (shell "make"))'));
    await cluster.log(result.client, result.job, `/: (run (shell "make"))\n${text}`, 'failed');
    await cluster.result(result);
    await expect.poll(async () => (await fetch(`${rs.url}/api/v1/builds/${result.job}`)).status, { timeout: 15_000 }).toBe(200);

    await page.goto(`${rs.url}/builds/${result.job}#L120`);
    const line = page.locator('#L120');
    await expect.poll(() => line.getAttribute('class')).toContain('hl');
    expect(await line.innerText()).toContain('output line 118');
    const inView = () =>
      line.evaluate((el) => {
        const r = el.getBoundingClientRect();
        return r.top >= 0 && r.bottom <= window.innerHeight;
      });
    await expect.poll(inView).toBe(true);
    expect(await page.locator('#log .l.hl').count()).toBe(1);

    await page.goto(`${rs.url}/builds/${result.job}#L200-L210`);
    await expect.poll(() => page.locator('#log .l.hl').count()).toBe(11);
    expect(await page.locator('#log .l.hl').first().getAttribute('id')).toBe('L200');

    // The failed step is the one open and marked.
    expect(await page.locator('details.step.failing[open] summary').innerText()).toContain('(run (shell "make"))');

    await page.fill('#log-search', 'warning');
    await expect.poll(() => page.locator('#log-search-count').innerText()).toBe('1 of 3');
    await page.click('#log-next');
    expect(await page.locator('#log .l.current').innerText()).toContain('output line 142 warning');
    await page.click('#log-prev');
    await page.click('#log-prev');
    expect(await page.locator('#log-search-count').innerText()).toBe('3 of 3');
    expect(await page.locator('#log .l.current').innerText()).toContain('output line 242 warning');

    // The screenshot of a build page (docs/screenshots): a short failed build, a line picked.
    const shown = sampleResult({ name: 'hello-world', state: 'failed', failure: 'step 2: exit 2', artifacts: [] });
    const make = [
      '[2/2] /: (run (shell "make"))',
      '\x1b[1mcc -O2 -c hello.c\x1b[0m',
      '\x1b[33mhello.c:3:5: warning:\x1b[0m unused variable \x1b[1m‘x’\x1b[0m',
      Array.from({ length: 11 }, (_, i) => `\rlinking [${'#'.repeat(i * 2).padEnd(20)}] ${i * 10}%`).join(''),
      '\x1b[31mhello.c:9: undefined reference to `greet`\x1b[0m',
      'make: *** [Makefile:4: hello] Error 2',
    ].join('\n');
    const pieces = [
      stepStarted('[1/2] (from busybox)'),
      `[1/2] (from busybox)\n---> using "${'a'.repeat(64)}" from cache\n`,
      stepFinished(true, 'a'.repeat(64), '', 412),
      stepStarted('[2/2] /: (run (shell "make"))'),
      `${make}\n`,
    ];
    for (const [i, piece] of pieces.entries()) await cluster.log(shown.client, shown.job, piece, i === pieces.length - 1 ? 'failed' : undefined);
    await cluster.result(shown);
    await expect.poll(async () => (await fetch(`${rs.url}/api/v1/builds/${shown.job}`)).status, { timeout: 15_000 }).toBe(200);
    await mkdir(SCREENSHOTS, { recursive: true });
    await page.goto(`${rs.url}/builds/${shown.job}#L7`);
    await expect.poll(() => page.locator('#log .l.hl').count()).toBe(1);
    await page.screenshot({ path: join(SCREENSHOTS, 'build-page.png'), fullPage: true });
  });

  it('remembers the dark-mode choice', async () => {
    await page.goto(rs.url);
    await page.click('#theme-toggle');
    expect(await page.evaluate(() => document.documentElement.dataset['theme'])).toBe('dark');
    await page.reload();
    await page.waitForFunction(() => document.documentElement.dataset['theme'] === 'dark');
    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    expect(background).toBe('rgb(18, 18, 18)');
    expect(await page.locator('#theme-toggle').innerText()).toBe('Light mode');
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-dark.png') });
    await page.click('#theme-toggle');
    await page.reload();
    await page.waitForFunction(() => document.documentElement.dataset['theme'] === 'light');
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(255, 255, 255)');
    await expect.poll(() => page.locator('#running-rows').innerText(), { timeout: 15_000 }).toContain(running.job);
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard.png') });
  });
});
