import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseSpec } from '@cairn/spec';
import { ContextHashCache, generateManifest, planSpec, type Manifest } from '../src/index.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
// Well outside the racy window: a file the cache may keep.
const HOUR_AGO = new Date(Date.now() - 3600_000);

let ctx: string;
let cacheDir: string;

async function put(rel: string, content: string, mtime: Date | null = HOUR_AGO): Promise<void> {
  await mkdir(join(ctx, rel, '..'), { recursive: true });
  await writeFile(join(ctx, rel), content);
  if (mtime) await utimes(join(ctx, rel), mtime, mtime);
}

/** One run as the CLI does it: open the cache, walk, save. */
async function run(src = '.'): Promise<{ manifest: Manifest; cache: ContextHashCache }> {
  const cache = await ContextHashCache.open(ctx, cacheDir);
  const manifest = await generateManifest(ctx, src, ['.git'], cache);
  await cache.save();
  return { manifest, cache };
}

const fileDigests = (m: Manifest): Record<string, string> =>
  m.kind === 'file' ? { [m.path]: m.sha256 } : m.kind === 'dir' ? Object.assign({}, ...m.children.map(fileDigests)) : {};

beforeEach(async () => {
  ctx = await mkdtemp(join(tmpdir(), 'cairn-ctx-cache-'));
  cacheDir = await mkdtemp(join(tmpdir(), 'cairn-ctx-cache-dir-'));
  await put('a.txt', 'alpha\n');
  await put('src/b.txt', 'bravo\n');
  await put('src/deep/c.txt', 'charlie\n');
  await put('.git/HEAD', 'ref\n');
});

afterEach(async () => {
  await rm(ctx, { recursive: true, force: true });
  await rm(cacheDir, { recursive: true, force: true });
});

describe('the context hash cache', () => {
  it('does not read an unchanged context again, and gives the manifest the uncached walk gives', async () => {
    const uncached = await generateManifest(ctx, '.', ['.git']);
    const first = await run();
    expect(first.cache.reads).toBe(3);
    const second = await run();
    expect([second.cache.hits, second.cache.reads]).toEqual([3, 0]);
    expect(second.manifest).toEqual(uncached);
    expect(first.manifest).toEqual(uncached);
  });

  it('trusts an entry whose stat matches without opening the file', async () => {
    const { cache } = await run();
    // Swap a digest in the cache file: a run that reads nothing can only repeat it.
    const body = JSON.parse(await readFile(cache.file, 'utf8')) as { entries: [string, string, ...number[]][] };
    body.entries.find((e) => e[0] === 'src/b.txt')![1] = sha('planted');
    await writeFile(cache.file, JSON.stringify(body));
    expect(fileDigests((await run()).manifest)['src/b.txt']).toBe(sha('planted'));
  });

  it('re-reads a file rewritten with the same size and a new mtime, and only that file', async () => {
    await run();
    await put('src/b.txt', 'BRAVO\n', new Date(HOUR_AGO.getTime() + 1000));
    const { manifest, cache } = await run();
    expect([cache.hits, cache.reads]).toEqual([2, 1]);
    expect(fileDigests(manifest)['src/b.txt']).toBe(sha('BRAVO\n'));
    // Kept for next time.
    expect((await run()).cache.reads).toBe(0);
  });

  it('reads a file added or removed since, and sees a changed inode as a change', async () => {
    await run();
    await put('src/new.txt', 'new\n');
    await rm(join(ctx, 'a.txt'));
    // Same content, size and times, but another inode: the old stat no longer vouches.
    await rm(join(ctx, 'src/deep/c.txt'));
    await put('src/deep/c.txt', 'charlie\n');
    const { manifest, cache } = await run();
    expect([cache.hits, cache.reads]).toEqual([1, 2]);
    expect(fileDigests(manifest)).toEqual({ 'src/b.txt': sha('bravo\n'), 'src/deep/c.txt': sha('charlie\n'), 'src/new.txt': sha('new\n') });
  });

  it('re-reads a racy file (modified just before the run) every time until it settles', async () => {
    await put('src/b.txt', 'bravo\n', null);
    await run();
    const second = await run();
    expect([second.cache.hits, second.cache.reads]).toEqual([2, 1]);
    // Rewritten with the same size within the timestamp tick it was read in, the stat could
    // look the same: what keeps this right is that the racy entry was never kept.
    await writeFile(join(ctx, 'src/b.txt'), 'BRAVO\n');
    expect(fileDigests((await run()).manifest)['src/b.txt']).toBe(sha('BRAVO\n'));
    const entries = (JSON.parse(await readFile(second.cache.file, 'utf8')) as { entries: [string][] }).entries.map((e) => e[0]);
    expect(entries).not.toContain('src/b.txt');
  });

  it('does not rewrite the cache for a file just edited, and re-reads it until it settles', async () => {
    const { cache } = await run();
    const before = await readFile(cache.file, 'utf8');
    // Same size, just now: racy, so read and not kept; its old entry stays, vouching for nothing.
    await writeFile(join(ctx, 'src/b.txt'), 'BRAVO\n');
    const edited = await run();
    expect([edited.cache.hits, edited.cache.reads]).toEqual([2, 1]);
    expect(fileDigests(edited.manifest)['src/b.txt']).toBe(sha('BRAVO\n'));
    expect(await readFile(cache.file, 'utf8')).toBe(before);
    expect(fileDigests((await run()).manifest)['src/b.txt']).toBe(sha('BRAVO\n'));
    // Settled (its mtime an hour back, its ctime now): read once more, then kept.
    await utimes(join(ctx, 'src/b.txt'), HOUR_AGO, HOUR_AGO);
    expect((await run()).cache.reads).toBe(1);
    const settled = await run();
    expect([settled.cache.hits, settled.cache.reads]).toEqual([3, 0]);
    expect(fileDigests(settled.manifest)['src/b.txt']).toBe(sha('BRAVO\n'));
  });

  it.each([
    ['garbage', 'not json at all {'],
    ['a truncated file', '{"version":1,"root":"/x","entries":[["a.txt","'],
    ['a wrong shape', JSON.stringify({ version: 1, root: '', entries: [['a.txt', 42]] })],
    ['JSON null', 'null'],
  ])('ignores a corrupt cache (%s) and rewrites it', async (_what, text) => {
    const { cache } = await run();
    await writeFile(cache.file, text);
    const again = await run();
    expect([again.cache.hits, again.cache.reads]).toEqual([0, 3]);
    expect(fileDigests(again.manifest)['a.txt']).toBe(sha('alpha\n'));
    expect((await run()).cache.hits).toBe(3);
  });

  it('leaves no temporary file behind and keys the cache by the context, not the cache directory', async () => {
    const { cache } = await run();
    expect(await readdir(cacheDir)).toEqual([cache.file.slice(cacheDir.length + 1)]);
    const other = await mkdtemp(join(tmpdir(), 'cairn-ctx-cache-other-'));
    try {
      expect((await ContextHashCache.open(other, cacheDir)).file).not.toBe(cache.file);
    } finally {
      await rm(other, { recursive: true });
    }
  });

  it('gives a plan the step IDs an uncached plan gives', async () => {
    const spec = parseSpec('((from base) (copy (src a.txt src) (dst /app/) (exclude .git)) (run (shell make)))');
    const uncached = await planSpec(spec, { contextDir: ctx });
    await run();
    const cache = await ContextHashCache.open(ctx, cacheDir);
    const cached = await planSpec(spec, { contextDir: ctx, contextDigests: cache });
    expect(cache.reads).toBe(0);
    expect(cached).toEqual(uncached);
    expect(cached.result).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('hashing many files at once', () => {
  it('hashes a cold context of thousands of files over worker threads to the same digests', async () => {
    const expected: Record<string, string> = { 'a.txt': sha('alpha\n'), 'src/b.txt': sha('bravo\n'), 'src/deep/c.txt': sha('charlie\n') };
    await mkdir(join(ctx, 'many'));
    for (let i = 0; i < 1500; i++) {
      await writeFile(join(ctx, 'many', `f${i}`), `file ${i}\n`);
      expected[`many/f${i}`] = sha(`file ${i}\n`);
    }
    expect(fileDigests(await generateManifest(ctx, '.', ['.git']))).toEqual(expected);
  });

  it('fails as a read fails when a file goes away between the walk and its read', async () => {
    await mkdir(join(ctx, 'many'));
    for (let i = 0; i < 1500; i++) await writeFile(join(ctx, 'many', `f${i}`), '');
    const cache = await ContextHashCache.open(ctx, cacheDir);
    const walk = generateManifest(ctx, 'many', [], cache);
    // The walk's stats are synchronous up to its first yield; the reads come after.
    await rm(join(ctx, 'many', 'f1499'));
    await expect(walk).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
