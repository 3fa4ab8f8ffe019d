import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, openConfiguredBuilder, resolveInRoot, SnapshotPathError, type StepEvent } from '../src/index.js';
import { BASE, makeHarness, spec, type Harness } from './engine-harness.js';

describe('openConfiguredBuilder', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names the config file when no store is given anywhere', async () => {
    const env = { CAIRN_CONFIG: join(dir, 'absent.json') };
    await expect(openConfiguredBuilder({}, env)).rejects.toThrow(new ConfigError(`no store given: pass --store btrfs:/path (or overlayfs:, rsync:, xfs:), set CAIRN_STORE, or run tools/setup.sh to make a default in ${env.CAIRN_CONFIG}`));
  });

  it('turns a bad driver spec and an unreadable machine config into ConfigErrors', async () => {
    const env = { CAIRN_CONFIG: join(dir, 'absent.json'), CAIRN_STORE: 'floppy:/a' };
    await expect(openConfiguredBuilder({}, env)).rejects.toBeInstanceOf(ConfigError);
    await expect(openConfiguredBuilder({}, env)).rejects.toThrow(/floppy/);
    await writeFile(join(dir, 'bad.json'), '{ not json');
    await expect(openConfiguredBuilder({ store: `rsync:${dir}` }, { CAIRN_CONFIG: join(dir, 'bad.json') })).rejects.toThrow(new RegExp(`^cannot read the machine config ${join(dir, 'bad.json')}: `));
  });
});

describe('resolveInRoot (reading files out of a snapshot)', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'cairn-root-'));
    await mkdir(join(root, 'etc'));
    await writeFile(join(root, 'etc/passwd'), 'snapshot passwd');
    await mkdir(join(root, 'out'));
    await symlink('/etc/passwd', join(root, 'out/absolute'));
    await symlink('../../../../../etc/passwd', join(root, 'out/climbing'));
    await symlink('loop-b', join(root, 'out/loop-a'));
    await symlink('loop-a', join(root, 'out/loop-b'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('follows symlinks as if the snapshot were /', async () => {
    expect(await resolveInRoot(root, '/out/absolute')).toBe(join(root, 'etc/passwd'));
    expect(await resolveInRoot(root, '/out/climbing')).toBe(join(root, 'etc/passwd'));
    expect(await resolveInRoot(root, '/../../etc/passwd')).toBe(join(root, 'etc/passwd'));
  });

  it('names a missing path and a symlink loop', async () => {
    await expect(resolveInRoot(root, '/out/none')).rejects.toThrow(new SnapshotPathError('"/out/none" does not exist in the snapshot'));
    await expect(resolveInRoot(root, '/out/loop-a')).rejects.toThrow('"/out/loop-a": too many levels of symbolic links');
    await expect(resolveInRoot(root, 'relative')).rejects.toThrow('"relative" is not an absolute path');
  });
});

describe('step events (BuildOptions.onStep)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness('btrfs');
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('reports each snapshot step once, with its stage, ID, timing and whether it was cached', async () => {
    const s = spec('(copy (from (build tool)) (src /tool) (dst /tool)) (run (shell "cat /tool"))', `(build tool ((from ${BASE}) (shell /bin/sh -c) (run (shell "echo t > /tool"))))`);
    const first: StepEvent[] = [];
    const id = await h.builder.build(s, { log: () => undefined, onStep: (e) => first.push(e) });
    expect(first.map((e) => [e.stage, e.op, e.cached])).toEqual([
      ['tool', `(from ${BASE})`, false],
      ['tool', '(run (shell "echo t > /tool"))', false],
      ['', `(from ${BASE})`, true],
      ['', '(copy (from (build tool)) (src /tool) (dst /tool))', false],
      ['', '(run (shell "cat /tool"))', false],
    ]);
    expect(first.at(-1)!.id).toBe(id);
    for (const e of first) expect(e.ms).toBeGreaterThanOrEqual(0);
    const again: StepEvent[] = [];
    await h.builder.build(s, { log: () => undefined, onStep: (e) => again.push(e) });
    expect(again.map((e) => e.cached)).toEqual([true, true, true, true, true]);
    expect(again.map((e) => e.id)).toEqual(first.map((e) => e.id));
  });
});
