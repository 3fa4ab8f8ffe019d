import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { CancelledError, ociConfig } from '../src/index.js';
import { RUNTIMES, scratch, stepConfig, tree, waitFor } from './harness.js';

const FIXTURE = new URL('./fixtures/long-step.mjs', import.meta.url).pathname;

describe.each(RUNTIMES)('%s: cancellation and crashes', (runtime) => {
  it('abort kills a running step within seconds, and no container is left', async () => {
    const s = await scratch(runtime);
    const before = await tree(s.rootfs);
    const abort = new AbortController();
    let output = '';
    const step = s.sandbox.run(stepConfig('echo started; sleep 1000', { secrets: [{ target: '/run/secrets/a', value: Buffer.from('x') }] }), s.rootfs, {
      onOutput: (c) => (output += Buffer.from(c).toString()),
      signal: abort.signal,
    });
    await waitFor(() => output.includes('started'), 'the step to start');
    const abortedAt = Date.now();
    abort.abort();
    await expect(step).rejects.toBeInstanceOf(CancelledError);
    expect(Date.now() - abortedAt).toBeLessThan(5_000);
    expect(await s.containers()).toEqual([]);
    expect(await tree(s.rootfs)).toEqual(before);
  });

  it('an abort at any moment of start-up cancels the step cleanly', async () => {
    const s = await scratch(runtime);
    for (const delayMs of [0, 5, 10, 20, 40, 80]) {
      const abort = new AbortController();
      const step = s.sandbox.run(stepConfig('sleep 1000'), s.rootfs, { onOutput: () => undefined, signal: abort.signal });
      setTimeout(() => abort.abort(), delayMs);
      await expect(step).rejects.toBeInstanceOf(CancelledError);
      expect(await s.containers()).toEqual([]);
    }
  });

  it('an already aborted signal starts nothing', async () => {
    const s = await scratch(runtime);
    const before = await tree(s.rootfs);
    const { output, error } = await s.attempt('echo never', {}, { signal: AbortSignal.abort() });
    expect(error).toBeInstanceOf(CancelledError);
    expect(output).toBe('');
    expect(await tree(s.rootfs)).toEqual(before);
    expect(existsSync(`${s.stateDir}.bundles`)).toBe(false);
  });

  it('a worker SIGKILLed mid-step takes its step with it: container, runtime and bundle (secrets) gone, without init()', async () => {
    const s = await scratch(runtime);
    const worker = execa('node', ['--import', 'tsx', FIXTURE, runtime, s.stateDir, s.rootfs], { reject: false });
    let output = '';
    worker.stdout.on('data', (c: Buffer) => (output += c.toString()));
    await waitFor(() => output.includes('started'), 'the worker to start its step');
    const [container] = await s.containers();
    expect(container).toMatch(/^cairn-/);
    worker.kill('SIGKILL');
    await worker;
    await waitFor(async () => (await s.containers()).length === 0, 'the step to die with its worker', 10_000);
    await waitFor(async () => !(await execa('ps', ['-eo', 'args'])).stdout.includes(container!), 'the runtime to exit', 5_000);
    await waitFor(() => !existsSync(join(`${s.stateDir}.bundles`, container!)), 'the bundle to go', 5_000);
  });

  it('init() removes the container of a worker whose whole process group was SIGKILLed mid-step', async () => {
    const s = await scratch(runtime);
    // Its own group, killed whole: the worker, its shell and the runtime die at once, and nothing is left to kill the step.
    const worker = execa('node', ['--import', 'tsx', FIXTURE, runtime, s.stateDir, s.rootfs], { reject: false, detached: true });
    let output = '';
    worker.stdout.on('data', (c: Buffer) => (output += c.toString()));
    await waitFor(() => output.includes('started'), 'the worker to start its step');
    process.kill(-worker.pid!, 'SIGKILL');
    await worker;
    const [leftover, ...others] = await s.containers();
    expect(others).toEqual([]);
    expect(leftover).toMatch(/^cairn-/);
    expect(existsSync(join(`${s.stateDir}.bundles`, leftover!))).toBe(true);

    await s.sandbox.init();
    expect(await s.containers()).toEqual([]);
    expect(existsSync(`${s.stateDir}.bundles`)).toBe(false);
  });

  it("init() in another process leaves a live worker's container and bundle alone", async () => {
    const s = await scratch(runtime);
    const worker = execa('node', ['--import', 'tsx', FIXTURE, runtime, s.stateDir, s.rootfs], { reject: false });
    let output = '';
    worker.stdout.on('data', (c: Buffer) => (output += c.toString()));
    try {
      await waitFor(() => output.includes('started'), 'the worker to start its step');
      const [running] = await s.containers();
      await s.sandbox.init();
      expect(await s.containers()).toEqual([running]);
      expect(existsSync(join(`${s.stateDir}.bundles`, running!, 'secret-0'))).toBe(true);
      expect(() => process.kill(worker.pid!, 0)).not.toThrow();
    } finally {
      worker.kill('SIGKILL');
      await worker;
    }
    await s.sandbox.init();
    expect(await s.containers()).toEqual([]);
  });

  it('init() takes a bundle whose pid is alive but started later (a reused pid) for a leftover', async () => {
    const s = await scratch(runtime);
    const stat = (await readFile('/proc/self/stat', 'utf8')).split(') ')[1]!.split(' ');
    const start = Number(stat[19]);
    const bundles = `${s.stateDir}.bundles`;
    const reused = join(bundles, `cairn-${process.pid}.${start + 1}-0123456789abcdef`);
    const mine = join(bundles, `cairn-${process.pid}.${start}-0123456789abcdef`);
    for (const dir of [reused, mine]) await mkdir(dir, { recursive: true });
    await s.sandbox.init();
    expect(existsSync(reused)).toBe(false);
    expect(existsSync(mine)).toBe(true);
    await rm(mine, { recursive: true });
  });

  it("init() leaves containers that are not Cairn's alone", async () => {
    const s = await scratch(runtime);
    const bundle = join(s.dir, 'other-bundle');
    await mkdir(bundle);
    const config = ociConfig(stepConfig('true'), { rootfs: s.rootfs, hostsFile: '/etc/hosts', secretFiles: [], fastSync: false, arch: process.arch });
    await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
    // `create` without `start`: the container exists, its process waits to be started.
    await execa(runtime, ['--root', s.stateDir, 'create', '--bundle', bundle, 'someone-else'], { stdio: 'ignore' });
    try {
      await s.sandbox.init();
      expect(await s.containers()).toEqual(['someone-else']);
    } finally {
      await execa(runtime, ['--root', s.stateDir, 'delete', '-f', 'someone-else']);
    }
  });
});
