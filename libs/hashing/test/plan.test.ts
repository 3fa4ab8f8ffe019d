import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSpec } from '@cairn/spec';
import { describe, expect, it } from 'vitest';
import { comparePlans, copyId, generateManifest, planSpec, secretDigest } from '../src/index.js';

const PATH_ENV = [['PATH', '/usr/bin:/usr/local/bin']] as const;

async function context(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-plan-'));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

describe('planSpec', () => {
  it('gives the SPEC-LANGUAGE test vector IDs, base image first', async () => {
    const plan = await planSpec(parseSpec('((from base) (run (shell Append)))'), { imageEnv: PATH_ENV });
    expect(plan.steps.map((s) => [s.kind, s.id])).toEqual([
      ['base', 'cae662172fd450bb0cd710a769079c05bfc5d8e35efa6576edc7d0377afdd4a2'],
      ['run', 'a16a57b254ca5fe6ca5f34ab5ed0e56d9f38e13c62f7de9d876addd2061f678e'],
    ]);
    expect(plan.result).toBe('a16a57b254ca5fe6ca5f34ab5ed0e56d9f38e13c62f7de9d876addd2061f678e');
  });

  it('names the cache domain in the ID of a step that mounts a cache, and only there', async () => {
    const spec = parseSpec('((from base) (run (shell "echo a")) (run (cache (npm (target /c))) (shell "echo b")) (run (shell "echo c")))');
    const ids = async (cacheDomain?: string) => (await planSpec(spec, { imageEnv: PATH_ENV, ...(cacheDomain === undefined ? {} : { cacheDomain }) })).steps;
    const [plain, alice, bob] = await Promise.all([ids(), ids('client-alice'), ids('client-bob')]);
    expect(plain[2]!.hashInput).not.toContain('cache_domain');
    expect(alice[2]!.hashInput).toMatch(/\(mount_secrets\(\)\)\(cache_domain client-alice\)\)$/);
    // Before the cache step all agree; from it on each domain has its own snapshots.
    expect(new Set([plain, alice, bob].map((p) => p[1]!.id)).size).toBe(1);
    expect(new Set([plain, alice, bob].map((p) => p[2]!.id)).size).toBe(3);
    expect(new Set([plain, alice, bob].map((p) => p[3]!.id)).size).toBe(3);
    expect(alice[3]!.hashInput).not.toContain('cache_domain');
  });

  it('threads workdir, user, shell and env (newest first) into later runs', async () => {
    const plan = await planSpec(
      parseSpec(`((from base)
      (workdir /src) (workdir sub) (user (uid 1) (gid 2)) (shell /bin/sh -c)
      (env A 1) (env B 2) (env A 3) (run (shell make)))`),
      { imageEnv: PATH_ENV },
    );
    const run = plan.steps.at(-1)!;
    expect(run.workdir).toBe('/src/sub');
    expect(run.hashInput).toContain('(workdir /src/sub)(user((uid 1)(gid 2)))(env((A 3)(B 2)(PATH /usr/bin:/usr/local/bin)))(cmd make)(shell(/bin/sh -c))');
  });

  it('joins a relative workdir with "/" without folding, as OBuilder does', async () => {
    const plan = await planSpec(parseSpec('((from base) (workdir a) (workdir ../b) (run (shell x)))'));
    expect(plan.steps.at(-1)!.workdir).toBe('//a/../b');
  });

  it('starts Windows builds as ContainerAdministrator in C:/ with cmd', async () => {
    const plan = await planSpec(parseSpec('((from w) (workdir src) (run (shell dir)))'), { os: 'windows' });
    expect(plan.steps.at(-1)!.hashInput).toContain('(workdir C://src)(user((name ContainerAdministrator)))(env())(cmd dir)(shell(cmd /S /C))');
  });

  it('hashes copies from the context with the workdir-joined destination', async () => {
    const dir = await context({ 'a.txt': 'hello\n' });
    const plan = await planSpec(parseSpec('((from base) (workdir /app) (copy (src a.txt) (dst b.txt)))'), { contextDir: dir });
    const copy = plan.steps.at(-1)!;
    expect(copy.id).toBe(
      copyId({
        base: plan.steps[0]!.id!,
        user: { kind: 'unix', uid: 0, gid: 0 },
        items: [await generateManifest(dir, 'a.txt', [])],
        dst: '/app/b.txt',
      }),
    );
  });

  it('marks copies unknown without a context, and every later step too', async () => {
    const plan = await planSpec(parseSpec('((from base) (copy (src a) (dst /a)) (run (shell x)))'));
    expect(plan.steps[1]).toMatchObject({ kind: 'copy', unknown: 'no build context was given' });
    expect(plan.steps[2]).toMatchObject({ kind: 'run', unknown: 'an earlier step is unknown: no build context was given' });
    expect(plan.steps[2]!.id).toBeUndefined();
    expect(plan.result).toBeUndefined();
  });

  it('plans child builds first; a copy from one is known only after it runs', async () => {
    const plan = await planSpec(parseSpec('((build tools ((from a) (run (shell make)))) (from b) (copy (from (build tools)) (src t) (dst /t)))'));
    expect(plan.steps.map((s) => [s.stage, s.kind])).toEqual([
      ['tools', 'base'],
      ['tools', 'run'],
      ['', 'base'],
      ['', 'copy'],
    ]);
    expect(plan.steps[3]!.unknown).toMatch(/output of a child build, known only after build "tools" \([0-9a-f]{12}\) has run/);
  });

  it('reports a missing secret or source as the step where the build would fail', async () => {
    const dir = await context({});
    const plan = await planSpec(parseSpec('((from base) (copy (src nope) (dst /x)) (run (secrets (tok (target /t))) (shell x)))'), { contextDir: dir });
    expect(plan.steps[1]!.error).toMatch(/"nope" not found/);
    const secretPlan = await planSpec(parseSpec('((from base) (run (secrets (tok (target /t))) (shell x)))'));
    expect(secretPlan.steps[1]!.error).toBe('no value supplied for secret "tok" (use --secret tok:FILE)');
  });

  it('puts only a keyed digest of a secret in the hash input', async () => {
    const spec = parseSpec('((from base) (run (secrets (tok (target /t))) (shell x)))');
    const withKey = (key: string, value: string) => planSpec(spec, { secrets: new Map([['tok', secretDigest(key, value)]]) });
    const a = await withKey('k1', 'hunter2');
    expect(a.steps[1]!.hashInput).not.toContain('hunter2');
    expect(a.steps[1]!.id).not.toBe((await withKey('k1', 'hunter3')).steps[1]!.id);
    expect(a.steps[1]!.id).toBe((await withKey('k1', 'hunter2')).steps[1]!.id);
  });
});

describe('comparePlans', () => {
  it('says which steps would rebuild and names the first-hand reason', async () => {
    const spec = parseSpec(`((from base)
      (run (shell setup))
      (copy (src .) (dst /src/))
      (env MODE fast)
      (run (shell build)))`);
    const dir = await context({ 'a.c': 'int a;\n', 'lib/b.c': 'int b;\n' });
    const before = await planSpec(spec, { contextDir: dir });
    await writeFile(join(dir, 'lib/b.c'), 'int b2;\n');
    await writeFile(join(dir, 'new.h'), '');
    const after = await planSpec(spec, { contextDir: dir });
    const result = comparePlans(before, after).map((c) => [c.step.kind, c.status, c.reasons]);
    expect(result).toEqual([
      ['base', 'same', []],
      ['run', 'same', []],
      ['copy', 'changed', ['changed: lib/b.c', 'added: new.h']],
      ['context', 'same', []],
      ['run', 'changed', ['an earlier step changed']],
    ]);
  });

  it('names changed env bindings and commands', async () => {
    const before = await planSpec(parseSpec('((from base) (env A 1) (run (shell make)))'));
    const after = await planSpec(parseSpec('((from base) (env A 2) (run (shell "make all")))'));
    expect(comparePlans(before, after).at(-1)!.reasons).toEqual(['env A changed', 'the command changed']);
  });
});
