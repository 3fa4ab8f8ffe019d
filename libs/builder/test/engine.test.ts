import { mkdtemp, readFile, writeFile, mkdir, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CancelledError } from '@cairn/sandbox';
import { BuildError } from '../src/index.js';
import { CollectedLog, makeHarness, spec, STORE_KINDS, type Harness } from './engine-harness.js';

describe.each(STORE_KINDS)('engine on the %s store', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness(kind);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('builds, then replays the whole build from cache', async () => {
    const s = spec(`(run (shell "echo one > /a; echo built-a")) (run (shell "cat /a; echo built-b"))`);
    const first = new CollectedLog();
    const id = await h.builder.build(s, { log: first.log });
    expect(first.output).toContain('built-a');
    expect(first.output).toContain('one\nbuilt-b');
    expect(first.notes.filter((n) => n.startsWith('---> saved as'))).toHaveLength(3);
    // The snapshot steps' headings say so (readers fold the log by them); the shell's does not.
    expect(first.events.flatMap((e) => (e.tag === 'heading' ? [e.step ?? false] : []))).toEqual([true, false, true, true]);
    const runs = h.sandbox.runs;
    const again = new CollectedLog();
    expect(await (await h.reopen()).build(s, { log: again.log })).toBe(id);
    expect(h.sandbox.runs).toBe(runs);
    expect(again.output).toBe(first.output);
    expect(again.notes.filter((n) => n.includes('from cache'))).toHaveLength(3);
    expect(await h.store.withRootfs(id, (root) => readFile(join(root, 'a'), 'utf8'))).toBe('one\n');
  });

  it('runs a step shared by concurrent builds once, and each sees its log from the start', async () => {
    const shared = `(run (shell "echo shared-start; sleep 1; echo shared-end"))`;
    const logs = [new CollectedLog(), new CollectedLog()];
    const runs = h.sandbox.runs;
    const [a, b] = await Promise.all([
      h.builder.build(spec(`${shared} (run (shell "echo left"))`), { log: logs[0]!.log }),
      h.builder.build(spec(`${shared} (run (shell "echo right"))`), { log: logs[1]!.log }),
    ]);
    expect(a).not.toBe(b);
    expect(h.sandbox.runs - runs).toBe(3);
    // The base image's stored log may come first; the shared step's lines follow, whole.
    for (const log of logs) expect(log.output).toMatch(/(^|\n)shared-start\nshared-end\n/);
  });

  it('reports a failing step to every requester and caches nothing of it', async () => {
    const failing = spec(`(run (shell "echo about-to-fail; sleep 0.5; exit 3"))`);
    const logs = [new CollectedLog(), new CollectedLog()];
    const results = await Promise.allSettled(logs.map((l) => h.builder.build(failing, { log: l.log })));
    for (const [i, r] of results.entries()) {
      expect(r.status).toBe('rejected');
      const reason = (r as PromiseRejectedResult).reason as Error;
      expect(reason).toBeInstanceOf(BuildError);
      expect(reason.message).toBe('(run (shell "echo about-to-fail; sleep 0.5; exit 3")) failed: the command exited with code 3');
      expect(logs[i]!.output).toContain('about-to-fail');
    }
    const runs = h.sandbox.runs;
    await expect(h.builder.build(failing, { log: () => undefined })).rejects.toThrow(BuildError);
    expect(h.sandbox.runs).toBe(runs + 1);
  });

  it('fails a step past its step timeout, killed with its processes, and caches nothing of it', async () => {
    const sleepy = spec(`(run (shell "echo started-sleepy; sleep 1000"))`);
    const log = new CollectedLog();
    const t0 = Date.now();
    const error = await h.builder.build(sleepy, { log: log.log, stepTimeoutMs: 1500 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BuildError);
    expect((error as Error).message).toBe('(run (shell "echo started-sleepy; sleep 1000")) failed: step timeout 1500 ms reached');
    expect(log.output).toContain('started-sleepy');
    expect(Date.now() - t0).toBeLessThan(20_000);
    const runs = h.sandbox.runs;
    await expect(h.builder.build(sleepy, { log: () => undefined, stepTimeoutMs: 500 })).rejects.toThrow('step timeout 500 ms reached');
    expect(h.sandbox.runs).toBe(runs + 1);
  });

  it("passes the build's limits to the sandbox, whose failure names the limit", async () => {
    const hog = spec(`(run (shell "x=$(head -c 300000000 /dev/zero | tr '\\\\0' a); echo done"))`);
    const error = await h.builder.build(hog, { log: () => undefined, limits: { memoryBytes: 128 * 1024 * 1024 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BuildError);
    expect((error as Error).message).toMatch(/ failed: killed: out of memory \(limit 128 MiB\)$/);
  });

  describe('cancellation', () => {
    const slow = (tag: string) => spec(`(run (shell "echo started-${tag}; sleep 1000"))`);

    it('kills the step when its only requester cancels, and saves nothing', async () => {
      const log = new CollectedLog();
      const controller = new AbortController();
      const build = h.builder.build(slow('solo'), { log: log.log, signal: controller.signal });
      await log.waitFor('started-solo');
      const t0 = Date.now();
      controller.abort();
      await expect(build).rejects.toBeInstanceOf(CancelledError);
      expect(Date.now() - t0).toBeLessThan(10_000);
    });

    it('keeps the step running while another requester still wants it', async () => {
      const s = spec(`(run (shell "echo started-pair; sleep 2; echo finished-pair"))`);
      const quitter = new AbortController();
      const logs = [new CollectedLog(), new CollectedLog()];
      const a = h.builder.build(s, { log: logs[0]!.log, signal: quitter.signal });
      const b = h.builder.build(s, { log: logs[1]!.log });
      await logs[0]!.waitFor('started-pair');
      quitter.abort();
      await expect(a).rejects.toBeInstanceOf(CancelledError);
      const id = await b;
      expect(logs[1]!.output).toContain('finished-pair');
      expect(await h.store.exists(id)).toBe(true);
    });

    it('kills the step when every requester has cancelled', async () => {
      const controllers = [new AbortController(), new AbortController()];
      const logs = [new CollectedLog(), new CollectedLog()];
      const builds = controllers.map((c, i) => h.builder.build(slow('both'), { log: logs[i]!.log, signal: c.signal }));
      await logs[0]!.waitFor('started-both');
      await logs[1]!.waitFor('started-both');
      for (const c of controllers) c.abort();
      for (const b of builds) await expect(b).rejects.toBeInstanceOf(CancelledError);
    });

    it('runs a step afresh for a request that arrives while it is being cancelled', async () => {
      const s = spec(`(run (shell "echo started-again; sleep 1; echo done-again"))`);
      const controller = new AbortController();
      const first = new CollectedLog();
      const cancelled = h.builder.build(s, { log: first.log, signal: controller.signal });
      await first.waitFor('started-again');
      controller.abort();
      const firstOutcome = expect(cancelled).rejects.toBeInstanceOf(CancelledError);
      const second = new CollectedLog();
      const id = await h.builder.build(s, { log: second.log });
      await firstOutcome;
      expect(second.output).toMatch(/(^|\n)started-again\ndone-again\n$/);
      expect(await h.store.exists(id)).toBe(true);
    });

    it('a cancel arriving after the build finished changes nothing', async () => {
      const controller = new AbortController();
      const id = await h.builder.build(spec('(run (shell "echo quick"))'), { log: () => undefined, signal: controller.signal });
      controller.abort();
      expect(await h.store.exists(id)).toBe(true);
    });
  });

  it('mounts secrets read-only, keeps them out of logs and snapshots, and names a missing one', async () => {
    const s = spec(
      `(run (secrets (token (target /run/secrets/token))) (shell "cat /run/secrets/token | wc -c; echo x > /run/secrets/token || echo read-only"))`,
    );
    const log = new CollectedLog();
    const id = await h.builder.build(s, { log: log.log, secrets: new Map([['token', Buffer.from('super-secret-value')]]) });
    expect(log.output).toContain('18\n');
    expect(log.output).toContain('read-only');
    expect(log.output).not.toContain('super-secret-value');
    const leaked = await h.store.withRootfs(id, async (root) => {
      const { execa } = await import('execa');
      return (await execa('grep', ['-rl', 'super-secret-value', root], { reject: false })).stdout;
    });
    expect(leaked).toBe('');
    await expect(h.builder.build(s, { log: () => undefined })).rejects.toThrow('no value was supplied for secret "token" (use --secret token:FILE)');
  });

  it('copies from the context with modes, ownership, symlinks and long names', async () => {
    const ctx = await mkdtemp(join(tmpdir(), 'cairn-ctx-'));
    const long = 'd'.repeat(120);
    await mkdir(join(ctx, 'src', long), { recursive: true });
    await writeFile(join(ctx, 'src', 'run.sh'), '#!/bin/sh\n', { mode: 0o700 });
    await writeFile(join(ctx, 'src', long, 'f.txt'), 'deep\n', { mode: 0o600 });
    await symlink('run.sh', join(ctx, 'src', 'link'));
    await mkdir(join(ctx, 'src', '.git'));
    const s = spec(`(user (uid 1000) (gid 1000)) (workdir /app) (copy (src src) (dst ./) (exclude .git))
      (run (shell "stat -c '%n %a %u:%g' src/run.sh src/${long}/f.txt src; readlink src/link; ls -a src"))`);
    const log = new CollectedLog();
    await h.builder.build(s, { log: log.log, contextDir: ctx });
    expect(log.output).toContain('src/run.sh 755 1000:1000\n');
    expect(log.output).toContain(`src/${long}/f.txt 644 1000:1000\n`);
    expect(log.output).toContain('src 755 1000:1000\n');
    expect(log.output).toContain('run.sh\n');
    expect(log.output).not.toContain('.git');
  });

  it('copies from a child build, which sees its whole root filesystem', async () => {
    const s = spec(
      `(copy (from (build tool)) (src /bin/tool /etc/tool.conf) (dst /usr/local/))
        (run (shell "cat /usr/local/tool.conf; /usr/local/tool"))`,
      `(build tool ((from cairn/busybox:latest) (shell /bin/sh -c)
          (run (shell "printf '#!/bin/sh\\necho tool-ran\\n' > /bin/tool; chmod +x /bin/tool"))
          (run (shell "echo conf > /etc/tool.conf"))))`,
    );
    const log = new CollectedLog();
    await h.builder.build(s, { log: log.log });
    expect(log.output).toContain('conf\ntool-ran\n');
  });

  it('deletes a snapshot and everything built on it', async () => {
    const parent = await h.builder.build(spec('(run (shell "echo parent"))'), { log: () => undefined });
    const child = await h.builder.build(spec('(run (shell "echo parent")) (run (shell "echo child"))'), { log: () => undefined });
    await h.builder.delete(parent);
    expect(await h.store.exists(child)).toBe(false);
    expect(await h.store.exists(parent)).toBe(false);
  });

  it('prunes least-recently-used leaves first, then the parents they leave bare', async () => {
    // `used` moves at most once a minute (a hit within it writes nothing): the clock jumps.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const a = await h.builder.build(spec('(run (shell "echo prune-a"))'), { log: () => undefined });
      vi.setSystemTime(Date.now() + 120_000);
      const b = await h.builder.build(spec('(run (shell "echo prune-b"))'), { log: () => undefined });
      vi.setSystemTime(Date.now() + 120_000);
      await h.builder.build(spec('(run (shell "echo prune-a"))'), { log: () => undefined });
      const removed = await h.builder.prune(Date.now() + 1, 10_000);
      expect(removed.indexOf(b)).toBeGreaterThanOrEqual(0);
      expect(removed.indexOf(b)).toBeLessThan(removed.indexOf(a));
      // The base image is a parent until its last child goes, so it goes last.
      expect(removed.at(-1)).toBe(h.baseId);
      expect(h.builder.snapshotCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("keeps a cache domain's caches, and the steps that mount them, from every other domain", async () => {
    const plant = spec('(run (cache (npm (target /root/.npm))) (shell "echo planted > /root/.npm/file; echo planting"))');
    const look = spec('(run (cache (npm (target /root/.npm))) (shell "cat /root/.npm/file 2>/dev/null || echo nothing-there"))');
    const build = async (s: typeof plant, cacheDomain?: string) => {
      const log = new CollectedLog();
      const runs = h.sandbox.runs;
      const id = await h.builder.build(s, { log: log.log, ...(cacheDomain === undefined ? {} : { cacheDomain }) });
      return { id, output: log.output, ran: h.sandbox.runs > runs };
    };
    const planted = await build(plant, 'client-alice');
    expect(planted.ran).toBe(true);
    // Alice's next step sees what she left; bob's and an unscoped build's do not.
    expect((await build(look, 'client-alice')).output).toContain('planted\n');
    for (const other of ['client-bob', undefined]) {
      const seen = await build(look, other);
      expect(seen.ran, String(other)).toBe(true);
      expect(seen.output, String(other)).toContain('nothing-there');
      expect(seen.output, String(other)).not.toContain('planted');
    }
    // The same step in another domain is that domain's own (no replay of alice's), and
    // in hers again a hit; a step that mounts no cache is one snapshot for everybody.
    const bobs = await build(plant, 'client-bob');
    expect([bobs.ran, bobs.id === planted.id]).toEqual([true, false]);
    expect(await build(plant, 'client-alice')).toMatchObject({ id: planted.id, ran: false });
    const plain = spec('(run (shell "echo no-cache-here"))');
    const mine = await build(plain);
    expect(await build(plain, 'client-alice')).toMatchObject({ id: mine.id, ran: false });
    expect(await build(plain, 'client-bob')).toMatchObject({ id: mine.id, ran: false });
  });

  it('a hit within a minute of the last use does not move it (a cached rebuild writes nothing)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const a = await h.builder.build(spec('(run (shell "echo recent-a"))'), { log: () => undefined });
      vi.setSystemTime(Date.now() + 30_000);
      const b = await h.builder.build(spec('(run (shell "echo recent-b"))'), { log: () => undefined });
      vi.setSystemTime(Date.now() + 20_000);
      // a's hit comes 50 s after its use: a stays older than b.
      await h.builder.build(spec('(run (shell "echo recent-a"))'), { log: () => undefined });
      const removed = await h.builder.prune(Date.now() + 1, 10_000);
      expect(removed.indexOf(a)).toBeLessThan(removed.indexOf(b));
    } finally {
      vi.useRealTimers();
    }
  });
});
