import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliStore, type CliResult, type CliStore } from './cli-process.js';

const FILES = 1200;
const HOUR_AGO = new Date(Date.now() - 3600_000);

let dir: string;
let ctx: string;
let spec: string;

function cairn(args: readonly string[], cacheDir: string, env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...env, CAIRN_CONTEXT_CACHE: cacheDir }, maxBuffer: 64 << 20 }, (error, stdout, stderr) =>
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

const result = (r: CliResult) => /^result: ([0-9a-f]{64})$/m.exec(r.stdout)?.[1];

/** The cache files in `cacheDir`, parsed; a temporary file left behind fails the test. */
async function cacheEntries(cacheDir: string): Promise<string[]> {
  const names = await readdir(cacheDir);
  expect(names).toHaveLength(1);
  expect(names[0]).toMatch(/^[0-9a-f]{32}\.json$/);
  return (JSON.parse(await readFile(join(cacheDir, names[0]!), 'utf8')) as { entries: [string][] }).entries.map((e) => e[0]).sort();
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cairn-cli-ctx-cache-'));
  ctx = join(dir, 'ctx');
  await mkdir(join(ctx, 'src'), { recursive: true });
  for (let i = 0; i < FILES; i++) {
    const file = join(ctx, 'src', `f${i}.txt`);
    await writeFile(file, `file ${i}\n`);
    await utimes(file, HOUR_AGO, HOUR_AGO);
  }
  spec = join(dir, 'build.spec');
  await writeFile(spec, '((from cairn/busybox:latest) (shell /bin/sh -c) (copy (src src) (dst /src)) (run (shell "ls /src | wc -l")))');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('cairn plan with the context hash cache', () => {
  it('two plans at once both succeed, agree with an uncached plan and leave one whole cache', async () => {
    const cacheDir = await mkdtemp(join(dir, 'cache-'));
    const [a, b] = await Promise.all([cairn(['plan', '-f', spec, ctx], cacheDir), cairn(['plan', '-f', spec, ctx], cacheDir)]);
    expect([a.status, a.stderr, b.status, b.stderr]).toEqual([0, '', 0, '']);
    const uncached = await cairn(['plan', '-f', spec, ctx], await mkdtemp(join(dir, 'fresh-')));
    expect(result(a)).toMatch(/^[0-9a-f]{64}$/);
    expect([result(a), result(b)]).toEqual([result(uncached), result(uncached)]);
    expect(await cacheEntries(cacheDir)).toHaveLength(FILES);
    // And the cache they left serves the next plan.
    expect(result(await cairn(['plan', '-f', spec, ctx], cacheDir))).toBe(result(uncached));
  });

  it('sees a changed file through the cache', async () => {
    const cacheDir = await mkdtemp(join(dir, 'cache-'));
    const before = await cairn(['plan', '-f', spec, ctx], cacheDir);
    const file = join(ctx, 'src', 'f7.txt');
    await writeFile(file, 'FILE 7\n');
    await utimes(file, HOUR_AGO, new Date(HOUR_AGO.getTime() + 1000));
    try {
      const after = await cairn(['plan', '-f', spec, ctx], cacheDir);
      const uncached = await cairn(['plan', '-f', spec, ctx], await mkdtemp(join(dir, 'fresh-')));
      expect(result(after)).not.toBe(result(before));
      expect(result(after)).toBe(result(uncached));
    } finally {
      await writeFile(file, 'file 7\n');
      await utimes(file, HOUR_AGO, HOUR_AGO);
    }
  });
});

describe('cairn build with the context hash cache', () => {
  let store: CliStore;
  beforeAll(async () => {
    store = await cliStore('rsync');
  });
  afterAll(async () => {
    await store.cleanup();
  });

  it('copies under the ID an uncached plan gives, and leaves the cache a plan then reads', async () => {
    const cacheDir = await mkdtemp(join(dir, 'cache-'));
    const plan = await cairn(['plan', '--json', '-f', spec, ctx], await mkdtemp(join(dir, 'fresh-')));
    const copyId = (JSON.parse(plan.stdout) as { steps: { kind: string; id: string }[] }).steps.find((s) => s.kind === 'copy')!.id;
    const built = await cairn(['build', '--json', '-f', spec, ctx], cacheDir, store.env);
    expect(built.status, built.stderr).toBe(0);
    expect((JSON.parse(built.stdout) as { steps: { id: string }[] }).steps.map((s) => s.id)).toContain(copyId);
    expect(await cacheEntries(cacheDir)).toHaveLength(FILES);
    expect((await cairn(['plan', '--json', '-f', spec, ctx], cacheDir)).stdout).toBe(plan.stdout);
  });
});
