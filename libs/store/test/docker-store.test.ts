import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type RunningDockerd } from '../../../test/support/dockerd.js';
import { makeBusyboxRootfs } from '../../../test/support/rootfs.js';
import { DiskLimitUnsupportedError } from '../src/disk-limit.js';
import { DockerStore, type DockerBuildFile } from '../src/docker-store.js';
import { logText } from './store-behaviour.js';

const PATH = ['PATH', '/bin'] as const;
const ROOT = { kind: 'unix', uid: 0, gid: 0 } as const;

describe('the docker store, on a private dockerd', () => {
  let d: RunningDockerd;
  let root: string;
  let store: DockerStore;

  /** What the docker sandbox does in a step: run `script` in base, commit to target, and say so in docker.json. */
  const runStep = async (dir: string, script: string) => {
    const file = JSON.parse(await readFile(join(dir, 'docker.json'), 'utf8')) as DockerBuildFile;
    const name = `step-${Math.random().toString(16).slice(2)}`;
    await d.docker(['run', '--name', name, '--network', 'none', file.baseImage!.id, '/bin/sh', '-c', script]);
    const id = (await d.docker(['commit', name, file.target])).trim();
    await d.docker(['rm', name]);
    await writeFile(join(dir, 'docker.json'), JSON.stringify({ ...file, committed: { ...file.baseImage!, id } }));
  };
  const baseImage = (id: string) =>
    store.build(undefined, id, async (dir) => {
      await chmod(join(dir, 'rootfs'), 0o755);
      await makeBusyboxRootfs(join(dir, 'rootfs'));
      await writeFile(join(dir, 'env.json'), JSON.stringify({ env: [PATH, ['GREETING', 'hi "there" $x']], digest: 'sha256:x' }));
      await writeFile(join(dir, 'log'), 'fetched\n');
    });
  const tempTags = async () =>
    (await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).split('\n').filter((t) => t.startsWith(`${store.repo}-tmp`));

  beforeAll(async () => {
    d = await startDockerd();
    root = await mkdtemp(join(tmpdir(), 'cairn-docker-store-'));
    store = new DockerStore(root, { socketPath: d.socketPath });
    await store.init();
    await baseImage('base');
  });
  afterAll(async () => {
    await d?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('names images after a hash of its root path', () => {
    expect(store.repo).toMatch(/^cairn-[0-9a-f]{7}$/);
    expect(store.imageOf('x')).toBe(`${store.repo}:x`);
    expect(new DockerStore(`${root}/`).repo).toBe(store.repo);
  });

  it('publishes a fetched rootfs by docker import, with its env, keeping the log and env.json on the host', async () => {
    expect(await store.exists('base')).toBe(true);
    expect((await readdir(join(root, 'result', 'base'))).sort()).toEqual(['env.json', 'log']);
    const env = JSON.parse(await d.docker(['image', 'inspect', '--format', '{{json .Config.Env}}', store.imageOf('base')])) as string[];
    expect(env).toEqual(['PATH=/bin', 'GREETING=hi "there" $x']);
    expect(await store.withRootfs('base', (r) => readFile(join(r, 'etc/passwd'), 'utf8'))).toContain('user:x:1000');
    expect(await tempTags()).toEqual([]);
  });

  it('publishes what the sandbox committed to the target tag, and a step that committed nothing as its parent', async () => {
    await store.build('base', 'child', async (dir) => {
      await writeFile(join(dir, 'log'), 'ran\n');
      await runStep(dir, 'echo child-data > /data; chown 1000:1000 /data');
    });
    expect(await logText(store, 'child')).toBe('ran\n');
    const st = await store.withRootfs('child', async (r) => ({ text: await readFile(join(r, 'data'), 'utf8'), uid: (await stat(join(r, 'data'))).uid }));
    expect(st).toEqual({ text: 'child-data\n', uid: 1000 });
    await store.build('child', 'same', async () => undefined);
    expect(await store.withRootfs('same', (r) => readFile(join(r, 'data'), 'utf8'))).toBe('child-data\n');
    await expect(store.build('base', 'child', async () => undefined)).rejects.toThrow('already exists');
    expect(await tempTags()).toEqual([]);
  });

  it('leaves nothing behind when the step fails, even after a commit', async () => {
    await expect(
      store.build('base', 'failed', async (dir) => {
        await runStep(dir, 'echo x > /x');
        throw new Error('step failed');
      }),
    ).rejects.toThrow('step failed');
    expect(await store.exists('failed')).toBe(false);
    expect(await tempTags()).toEqual([]);
    expect(await readdir(join(root, 'result-tmp'))).toEqual([]);
    await expect(store.build('base', 'bad', async (dir) => writeFile(join(dir, 'rootfs', 'x'), 'x'))).rejects.toThrow('only through the docker sandbox');
  });

  it('refuses a disk limit before anything runs, naming the store and which stores hold one', async () => {
    let ran = false;
    const build = store.build('base', 'limited', async () => void (ran = true), { diskBytes: 64 * 1024 ** 2 });
    await expect(build).rejects.toBeInstanceOf(DiskLimitUnsupportedError);
    await expect(build).rejects.toThrow(
      `the docker store at ${root} cannot hold a step to a disk limit: its steps write container layers of the Docker daemon, which takes no per-step quota from Cairn; a disk limit needs the btrfs, xfs, zfs or overlayfs (on XFS) store`,
    );
    expect(ran).toBe(false);
    expect(await store.exists('limited')).toBe(false);
    expect(await tempTags()).toEqual([]);
  });

  it('refuses to delete a snapshot with children or containers, and deletes a leaf', async () => {
    await store.build('base', 'parent', async (dir) => runStep(dir, 'echo p > /p'));
    await store.build('parent', 'kid', async (dir) => runStep(dir, 'echo k > /k'));
    await expect(store.delete('parent')).rejects.toThrow(/snapshots are built on it.*kid/);
    await d.docker(['create', '--name', 'holder', store.imageOf('kid'), '/bin/true']);
    await expect(store.delete('kid')).rejects.toThrow(/containers use its image.*holder/);
    await d.docker(['rm', 'holder']);
    await store.delete('kid');
    await store.delete('parent');
    expect(await store.exists('kid')).toBe(false);
    expect(await store.exists('parent')).toBe(false);
    await store.delete('never-was');
  });

  it("deletes a snapshot sharing its parent's image (its step changed nothing) while the parent keeps the image", async () => {
    await store.build('base', 'kept', async (dir) => runStep(dir, 'echo k > /k'));
    await store.build('kept', 'unchanged', async () => undefined);
    await store.build('kept', 'sibling', async (dir) => runStep(dir, 'echo s > /s'));
    await store.delete('unchanged');
    expect(await store.exists('unchanged')).toBe(false);
    expect(await store.withRootfs('kept', (r) => readFile(join(r, 'k'), 'utf8'))).toBe('k\n');
    await expect(store.delete('kept')).rejects.toThrow(/snapshots are built on it.*sibling/);
    await store.delete('sibling');
    await store.delete('kept');
  });

  it('gives copy-on-write cache views of a volume, with a generation check', async () => {
    const user = { kind: 'unix', uid: 1000, gid: 1000 } as const;
    const first = await store.cache('opam downloads', user);
    expect(await readdir(first.path)).toEqual([]);
    expect((await stat(first.path)).uid).toBe(1000);
    await writeFile(join(first.path, 'a'), 'one');
    await first.release(true);
    expect(await d.docker(['volume', 'ls', '--format', '{{.Name}}'])).toContain(store.cacheVolume('opam downloads'));
    const [x, y] = [await store.cache('opam downloads', ROOT), await store.cache('opam downloads', ROOT)];
    expect(await readFile(join(x.path, 'a'), 'utf8')).toBe('one');
    await writeFile(join(x.path, 'a'), 'from-x');
    await writeFile(join(y.path, 'a'), 'from-y');
    await x.release(true);
    await y.release(true);
    const discarded = await store.cache('opam downloads', ROOT);
    expect(await readFile(join(discarded.path, 'a'), 'utf8')).toBe('from-x');
    await writeFile(join(discarded.path, 'a'), 'discarded');
    await discarded.release(false);
    const kept = await store.cache('opam downloads', ROOT);
    expect(await readFile(join(kept.path, 'a'), 'utf8')).toBe('from-x');
    await store.deleteCache('opam downloads');
    expect(await readFile(join(kept.path, 'a'), 'utf8')).toBe('from-x');
    await kept.release(true);
    const fresh = await store.cache('opam downloads', ROOT);
    expect(await readdir(fresh.path)).toEqual([]);
    await fresh.release(false);
    expect((await d.docker(['volume', 'ls', '--format', '{{.Name}}'])).split('\n').filter((n) => n.includes('-view-'))).toEqual([]);
  });

  it("init removes a dead process's temp tags, cache views and export containers, and nothing of a live one", async () => {
    await d.docker(['tag', store.imageOf('base'), `${store.repo}-tmp:999999-1`]);
    await d.docker(['tag', store.imageOf('base'), `${store.repo}-tmp:${process.pid}-999`]);
    await d.docker(['volume', 'create', `${store.repo}-view-999999-1`]);
    await d.docker(['create', '--name', `${store.repo}-export-999999-1`, store.imageOf('base'), '/x']);
    await store.init();
    expect(await tempTags()).toEqual([`${store.repo}-tmp:${process.pid}-999`]);
    expect(await d.docker(['volume', 'ls', '--format', '{{.Name}}'])).not.toContain('-view-');
    expect(await d.docker(['ps', '-a', '--format', '{{.Names}}'])).not.toContain('-export-');
    await d.docker(['rmi', `${store.repo}-tmp:${process.pid}-999`]);
  });

  it('reports free space of the daemon data root', async () => {
    const df = await store.df();
    expect(df.bytesTotal).toBeGreaterThan(0);
    expect(df.bytesFree).toBeLessThanOrEqual(df.bytesTotal);
  });
});
