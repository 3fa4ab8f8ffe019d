import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, openConfiguredBuilder, resolveInRoot, SnapshotPathError, type StepEvent } from '../src/index.js';
import { busyboxImage } from '../../../test/support/images.js';
import { BASE, CollectedLog, makeHarness, spec, type Harness } from './engine-harness.js';

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
    await expect(openConfiguredBuilder({}, env)).rejects.toThrow(
      new ConfigError(
        `no store given: pass --store btrfs:/path (or overlayfs:, rsync:, xfs:), set CAIRN_STORE, or run tools/setup.sh to make a default in ${env.CAIRN_CONFIG}`,
      ),
    );
  });

  it('turns a bad driver spec and an unreadable machine config into ConfigErrors', async () => {
    const env = { CAIRN_CONFIG: join(dir, 'absent.json'), CAIRN_STORE: 'floppy:/a' };
    await expect(openConfiguredBuilder({}, env)).rejects.toBeInstanceOf(ConfigError);
    await expect(openConfiguredBuilder({}, env)).rejects.toThrow(/floppy/);
    await writeFile(join(dir, 'bad.json'), '{ not json');
    await expect(openConfiguredBuilder({ store: `rsync:${dir}` }, { CAIRN_CONFIG: join(dir, 'bad.json') })).rejects.toThrow(
      new RegExp(`^cannot read the machine config ${join(dir, 'bad.json')}: `),
    );
  });

  it('takes the host network mode from the choice, CAIRN_HOST_NETWORK or the machine config, and names where a bad one came from', async () => {
    const store = `rsync:${join(dir, 'store')}`;
    const config = join(dir, 'open.json');
    await writeFile(config, JSON.stringify({ hostNetwork: 'open' }));
    const bad = (from: string) => new RegExp(`^unknown host network mode "open": choose isolated .* or shared .*${from}$`);
    const rejected = async (choices: object, env: NodeJS.ProcessEnv) => (await openConfiguredBuilder(choices, env).catch((e: unknown) => e)) as ConfigError;
    const fromEnv = await rejected({ store }, { CAIRN_CONFIG: join(dir, 'absent.json'), CAIRN_HOST_NETWORK: 'open' });
    expect(fromEnv.message).toMatch(bad(' \\(from CAIRN_HOST_NETWORK\\)'));
    expect(fromEnv.badValue).toEqual({ setting: 'hostNetwork', from: 'environment' });
    expect((await rejected({ store }, { CAIRN_CONFIG: config })).message).toMatch(bad(` \\(from ${config.replace(/[.]/g, '\\.')}\\)`));
    expect((await rejected({ store, hostNetwork: 'open' }, { CAIRN_CONFIG: join(dir, 'absent.json') })).badValue).toEqual({
      setting: 'hostNetwork',
      from: 'choice',
    });
    // A good choice or variable overrides the config file's bad one.
    (await openConfiguredBuilder({ store, hostNetwork: 'shared' }, { CAIRN_CONFIG: config })).close();
    (await openConfiguredBuilder({ store }, { CAIRN_CONFIG: config, CAIRN_HOST_NETWORK: 'isolated' })).close();
  });
});

describe("the machine's isolation settings (real runc)", () => {
  let dir: string;
  let images: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-isolation-config-'));
    images = join(dir, 'images');
    await busyboxImage(images, BASE);
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const env = (more: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({
    CAIRN_CONFIG: join(dir, 'absent.json'),
    CAIRN_FETCHER: `oci:${images}`,
    CAIRN_STORE: `rsync:${join(dir, 'store')}`,
    ...more,
  });
  const output = async (builder: Awaited<ReturnType<typeof openConfiguredBuilder>>, ops: string) => {
    const chunks: Uint8Array[] = [];
    try {
      await builder.build(spec(ops), { log: (e) => void (e.tag === 'output' && chunks.push(e.data)) });
      return Buffer.concat(chunks).toString();
    } finally {
      builder.close();
    }
  };

  it("takes every step's limits from CAIRN_STEP_* or the config file's stepLimits, and a job asks for less only", async () => {
    const bomb = '(run (shell "bomb() { bomb | bomb & }; bomb; exec sleep 1000"))';
    await expect(output(await openConfiguredBuilder({}, env({ CAIRN_STEP_PIDS: '64' })), bomb)).rejects.toThrow(/ failed: pids limit 64 reached$/);
    const config = join(dir, 'limits.json');
    await writeFile(config, JSON.stringify({ stepLimits: { memory: '4g', pids: 48 } }));
    await expect(output(await openConfiguredBuilder({}, env({ CAIRN_CONFIG: config })), bomb)).rejects.toThrow(/ failed: pids limit 48 reached$/);
    // A job asking for more than the worker allows gets the worker's.
    const builder = await openConfiguredBuilder({}, env({ CAIRN_STEP_PIDS: '40' }));
    try {
      await expect(builder.build(spec(bomb), { log: () => undefined, limits: { pids: 100_000 } })).rejects.toThrow(/ failed: pids limit 40 reached$/);
    } finally {
      builder.close();
    }
  });

  it('runs steps under the default seccomp filter unless CAIRN_SECCOMP or the config says unconfined, and names a bad value', async () => {
    // A different step each time: a cached one would replay the other's output.
    const probe = (tag: string) => `(run (shell "grep ^Seccomp: /proc/self/status; echo ${tag}"))`;
    expect(await output(await openConfiguredBuilder({}, env({})), probe('default'))).toContain('Seccomp:\t2\ndefault\n');
    expect(await output(await openConfiguredBuilder({}, env({ CAIRN_SECCOMP: 'unconfined' })), probe('unconfined'))).toContain('Seccomp:\t0\nunconfined\n');
    const bad = (await openConfiguredBuilder({}, env({ CAIRN_SECCOMP: 'off' })).catch((e: unknown) => e)) as ConfigError;
    expect(bad.message).toMatch(/^unknown seccomp mode "off": choose default .* or unconfined .* \(from CAIRN_SECCOMP\)$/);
    await expect(openConfiguredBuilder({}, env({ CAIRN_STEP_MEMORY: 'lots' }))).rejects.toThrow(
      new ConfigError('CAIRN_STEP_MEMORY: "lots" is not a size (e.g. 512m, 4g)'),
    );
    await expect(openConfiguredBuilder({}, env({ CAIRN_STEP_CPUS: '-1' }))).rejects.toThrow(new ConfigError('CAIRN_STEP_CPUS: "-1" is not a positive number'));
  });

  it('takes the disk limit from CAIRN_STEP_DISK, which a store without quotas refuses at start, naming itself, as it refuses a job asking for one', async () => {
    await expect(openConfiguredBuilder({}, env({ CAIRN_STEP_DISK: '10g' }))).rejects.toThrow(
      /^the rsync store at .* cannot hold a step to a disk limit: it keeps plain directories without quotas/,
    );
    await expect(openConfiguredBuilder({}, env({ CAIRN_STEP_DISK: 'lots' }))).rejects.toThrow(
      new ConfigError('CAIRN_STEP_DISK: "lots" is not a size (e.g. 512m, 4g)'),
    );
    const builder = await openConfiguredBuilder({}, env({}));
    try {
      await expect(builder.build(spec('(run (shell "echo never"))'), { log: () => undefined, limits: { diskBytes: 2 ** 30 } })).rejects.toThrow(
        /^\(run \(shell "echo never"\)\) failed: the rsync store at .* cannot hold a step to a disk limit/,
      );
    } finally {
      builder.close();
    }
  });

  it('runs each step in a user namespace when CAIRN_USERNS, the config or the choice says remap, and names a bad value', async () => {
    const probe = (tag: string) => `(run (shell "tr -s ' ' < /proc/self/uid_map; echo ${tag}"))`;
    expect(await output(await openConfiguredBuilder({}, env({})), probe('host'))).toContain(' 0 0 4294967295\nhost\n');
    expect(await output(await openConfiguredBuilder({}, env({ CAIRN_USERNS: 'remap' })), probe('remap'))).toContain(' 0 100000 65536\nremap\n');
    const config = join(dir, 'userns.json');
    await writeFile(config, JSON.stringify({ userns: 'remap' }));
    expect(await output(await openConfiguredBuilder({}, env({ CAIRN_CONFIG: config })), probe('config'))).toContain(' 0 100000 65536\nconfig\n');
    expect(await output(await openConfiguredBuilder({ userns: 'host' }, env({ CAIRN_CONFIG: config })), probe('choice'))).toContain(
      ' 0 0 4294967295\nchoice\n',
    );
    const bad = (await openConfiguredBuilder({}, env({ CAIRN_USERNS: 'on' })).catch((e: unknown) => e)) as ConfigError;
    expect(bad.message).toMatch(/^unknown user namespace mode "on": choose host .* or remap .* \(from CAIRN_USERNS\)$/);
    await expect(openConfiguredBuilder({}, env({ CAIRN_USERNS: 'remap', CAIRN_SANDBOX: 'docker' }))).rejects.toThrow(
      /^userns remap is for the runc and crun sandboxes; the docker sandbox's user IDs are its host's \(dockerd --userns-remap for docker\) \(from CAIRN_SANDBOX\)$/,
    );
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
    const s = spec(
      '(copy (from (build tool)) (src /tool) (dst /tool)) (run (shell "cat /tool"))',
      `(build tool ((from ${BASE}) (shell /bin/sh -c) (run (shell "echo t > /tool"))))`,
    );
    const first: StepEvent[] = [];
    const log = new CollectedLog();
    const id = await h.builder.build(s, { log: log.log, onStep: (e) => first.push(e) });
    expect(first.map((e) => [e.stage, e.op, e.cached])).toEqual([
      ['tool', `(from ${BASE})`, false],
      ['tool', '(run (shell "echo t > /tool"))', false],
      ['', `(from ${BASE})`, true],
      ['', '(copy (from (build tool)) (src /tool) (dst /tool))', false],
      ['', '(run (shell "cat /tool"))', false],
    ]);
    expect(first.at(-1)!.id).toBe(id);
    for (const e of first) expect(e.ms).toBeGreaterThanOrEqual(0);
    // Each step's end note carries the same event, in its stage: the CLI's views read steps from it.
    const ends = log.events.flatMap((e) => (e.tag === 'note' && e.done ? [e] : []));
    expect(ends.map((e) => e.done)).toEqual(first);
    expect(ends.map((e) => [e.stage, e.text])).toEqual(
      first.map((e) => [e.stage, e.cached ? `---> using ${JSON.stringify(e.id)} from cache` : `---> saved as ${JSON.stringify(e.id)}`]),
    );
    const again: StepEvent[] = [];
    await h.builder.build(s, { log: () => undefined, onStep: (e) => again.push(e) });
    expect(again.map((e) => e.cached)).toEqual([true, true, true, true, true]);
    expect(again.map((e) => e.id)).toEqual(first.map((e) => e.id));
  });
});
