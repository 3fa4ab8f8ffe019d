import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadIntoDocker, OciImageError, pushImage, readOciImage, writeImageArchive, writeOciImage, type ImageConfig, type OciImage } from '@cairn/oci-image';
import { startDockerd, type RunningDockerd } from '../../../test/support/dockerd.js';
import { BUSYBOX_PATH } from '../../../test/support/images.js';
import { startRegistry, startTokenAuthProxy, type RunningRegistry } from '../../../test/support/registry.js';
import { makeAwkwardRootfs } from '../../../test/support/rootfs.js';

const run = promisify(execFile);

const CONFIG: ImageConfig = {
  env: [
    ['PATH', BUSYBOX_PATH],
    ['GREETING', 'hello = world'],
  ],
  entrypoint: ['/bin/sh', '-c', 'echo "$GREETING from $(pwd) as $(id -u):$(id -g) $*"', 'sh'],
  cmd: ['default-arg'],
  user: '1000:1000',
  workdir: '/home/user',
  labels: { 'org.opencontainers.image.title': 'test', 'b.second': '2' },
  exposedPorts: ['8080'],
};

let work: string;
let rootfs: string;
let image: OciImage;
let registry: RunningRegistry;

async function makeRootfs(dir: string): Promise<void> {
  // mkdtemp's 0700 would become the image's `/`, shutting out every user but root.
  await mkdir(dir, { mode: 0o755 });
  await chmod(dir, 0o755);
  await makeAwkwardRootfs(dir);
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cairn-oci-image-'));
  rootfs = join(work, 'rootfs');
  await makeRootfs(rootfs);
  image = await writeOciImage(join(work, 'layout'), 'hello:1', [{ rootfs, config: CONFIG }]);
  registry = await startRegistry();
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('an image written into an OCI layout', () => {
  it('unpacks with umoci to the same tree: owners, modes, setuid, links', async () => {
    const bundle = join(work, 'bundle');
    await run('umoci', ['unpack', '--image', `${image.layoutDir}:hello:1`, bundle]);
    const out = join(bundle, 'rootfs');
    expect(await readFile(join(out, 'bin/busybox'))).toEqual(await readFile('/usr/bin/busybox'));
    expect(await readlink(join(out, 'bin/sh'))).toBe('busybox');
    expect(await readlink(join(out, 'usr/bin/absolute-link'))).toBe('/bin/busybox');
    const notes = await stat(join(out, 'home/user/notes'));
    expect([notes.uid, notes.gid, notes.mode & 0o7777]).toEqual([1000, 1000, 0o640]);
    expect((await stat(join(out, 'usr/bin/su'))).mode & 0o7777).toBe(0o4755);
    expect((await stat(join(out, 'tmp'))).mode & 0o7777).toBe(0o1777);
    expect((await stat(join(out, 'data/a'))).ino).toBe((await stat(join(out, 'data/b'))).ino);
    expect((await lstat(join(out, 'data/a'))).mtimeMs).toBe(0);
    // umoci turns the image config into the runtime config: the settings made it through.
    const runtime = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as {
      process: { args: string[]; env: string[]; cwd: string; user: { uid: number; gid: number } };
    };
    expect(runtime.process.args).toEqual([...(CONFIG.entrypoint ?? []), 'default-arg']);
    expect(runtime.process.env).toContain('GREETING=hello = world');
    expect(runtime.process.cwd).toBe('/home/user');
    expect(runtime.process.user).toMatchObject({ uid: 1000, gid: 1000 });
  });

  it('is described by skopeo with its config, labels and platform', async () => {
    const { stdout } = await run('skopeo', ['inspect', '--config', `oci:${image.layoutDir}:hello:1`]);
    const config = JSON.parse(stdout) as { architecture: string; os: string; created: string; config: Record<string, unknown> };
    expect(config.os).toBe('linux');
    expect(config.architecture).toBe(image.images[0]?.platform.architecture);
    expect(config.created).toBe('1970-01-01T00:00:00Z');
    expect(config.config).toMatchObject({
      User: '1000:1000',
      WorkingDir: '/home/user',
      Env: [`PATH=${BUSYBOX_PATH}`, 'GREETING=hello = world'],
      ExposedPorts: { '8080/tcp': {} },
      Labels: { 'b.second': '2', 'org.opencontainers.image.title': 'test' },
    });
  });

  it('has the same digests when exported again from a copy made later, and other digests for other settings', async () => {
    const copy = join(work, 'rootfs-copy');
    await run('cp', ['-a', rootfs, copy]);
    await utimes(join(copy, 'etc/passwd'), new Date(), new Date('2030-01-01'));
    await utimes(join(copy, 'home/user'), new Date(), new Date('2031-01-01'));
    const again = await writeOciImage(join(work, 'layout-again'), 'hello:1', [{ rootfs: copy, config: CONFIG }]);
    expect(again.index.digest).toBe(image.index.digest);
    expect(again.images[0]?.layers).toEqual(image.images[0]?.layers);

    const otherEnv = await writeOciImage(join(work, 'layout-again'), 'hello:2', [{ rootfs: copy, config: { ...CONFIG, env: [['PATH', BUSYBOX_PATH]] } }]);
    expect(otherEnv.images[0]?.layers).toEqual(image.images[0]?.layers);
    expect(otherEnv.index.digest).not.toBe(image.index.digest);
    await writeFile(join(copy, 'etc/motd'), 'one more file\n');
    const otherTree = await writeOciImage(join(work, 'layout-again'), 'hello:3', [{ rootfs: copy, config: CONFIG }]);
    expect(otherTree.images[0]?.layers[0]?.digest).not.toBe(image.images[0]?.layers[0]?.digest);
    // The layout keeps all three names, and each reads back as written.
    expect((await readOciImage(join(work, 'layout-again'), 'hello:1')).index).toEqual(again.index);
    expect(await readOciImage(join(work, 'layout-again'), 'hello:3')).toEqual(otherTree);
  });

  it('carries one manifest per platform in its index', async () => {
    const multi = await writeOciImage(join(work, 'layout-multi'), 'multi:1', [
      { rootfs, config: { ...CONFIG, architecture: 'amd64' } },
      { rootfs, config: { ...CONFIG, architecture: 'arm64' } },
    ]);
    const { stdout } = await run('skopeo', ['inspect', '--raw', `oci:${multi.layoutDir}:multi:1`]);
    const index = JSON.parse(stdout) as { manifests: { platform: { architecture: string } }[] };
    expect(index.manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
    expect(sha256(Buffer.from(stdout))).toBe(multi.index.digest);
  });

  it('builds on a parent image: its layers and run settings, then one layer of changes', async () => {
    const dir = join(work, 'layout-parent');
    const parent = await writeOciImage(dir, 'parent', [{ rootfs, config: CONFIG }]);
    const changes = join(work, 'changes');
    await mkdir(changes, { mode: 0o755 });
    await writeFile(join(changes, 'added'), 'new\n');
    await writeFile(join(changes, '.wh.data'), '');
    const child = await writeOciImage(dir, 'child:1', [{ rootfs: changes, config: { env: [['PATH', '/bin']] } }], { parent: 'parent:latest' });
    const [parentLayer, ...more] = child.images[0]?.layers ?? [];
    expect(parentLayer).toEqual(parent.images[0]?.layers[0]);
    expect(more).toHaveLength(1);
    const { stdout } = await run('skopeo', ['inspect', '--config', `oci:${dir}:child:1`]);
    const config = JSON.parse(stdout) as { config: Record<string, unknown>; rootfs: { diff_ids: string[] }; history: unknown[] };
    expect(config.config).toMatchObject({ User: '1000:1000', WorkingDir: '/home/user', Env: ['PATH=/bin'], Cmd: ['default-arg'] });
    expect(config.rootfs.diff_ids).toHaveLength(2);
    expect(config.history).toHaveLength(2);
    // umoci applies the layers in order: the parent's tree, the whiteout's deletion, the new file.
    const bundle = join(work, 'child-bundle');
    await run('umoci', ['unpack', '--image', `${dir}:child:1`, bundle]);
    expect(await readFile(join(bundle, 'rootfs/added'), 'utf8')).toBe('new\n');
    expect(await readlink(join(bundle, 'rootfs/bin/sh'))).toBe('busybox');
    await expect(stat(join(bundle, 'rootfs/data'))).rejects.toThrow(/ENOENT/);

    await expect(writeOciImage(dir, 'x:1', [{ rootfs: changes, config: { architecture: 's390x' } }], { parent: 'parent' })).rejects.toThrow(
      'image x:1 cannot be built on its parent: image parent has no linux/s390x platform (it has linux/',
    );
    await expect(writeOciImage(dir, 'x:1', [{ rootfs: changes, config: {} }], { parent: 'nope:1' })).rejects.toThrow(
      `no image named nope:1 in the OCI layout ${dir}`,
    );
  });

  it('refuses bad settings, naming them', async () => {
    const write = (config: ImageConfig, ref = 'bad:1') => writeOciImage(join(work, 'layout-bad'), ref, [{ rootfs, config }]);
    await expect(write({ workdir: 'relative' })).rejects.toThrow(/workdir must be an absolute path, not "relative"/);
    await expect(write({ env: [['A=B', 'x']] })).rejects.toThrow(/env name "A=B"/);
    await expect(write({ exposedPorts: ['http'] })).rejects.toThrow(/exposed port/);
    await expect(write({}, 'no spaces')).rejects.toThrow(OciImageError);
    await expect(writeOciImage(join(work, 'layout-bad'), 'x:1', [{ rootfs: join(work, 'missing'), config: {} }])).rejects.toThrow(
      /root filesystem .*missing is not a directory/,
    );
  });
});

describe('pushing to a registry', () => {
  it('uploads the blobs and manifests; skopeo pulls it by tag and digest; a second push uploads nothing', async () => {
    const host = `127.0.0.1:${registry.port}`;
    const pushed: string[] = [];
    const result = await pushImage(image, `${host}/cairn/hello:1`, { onBlob: (d, outcome) => pushed.push(outcome) });
    expect(result).toEqual({ ref: `${host}/cairn/hello:1`, digest: image.index.digest });
    expect(pushed).toEqual(['pushed', 'pushed']);

    const { stdout: raw } = await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${host}/cairn/hello:1`]);
    expect(sha256(Buffer.from(raw))).toBe(image.index.digest);
    const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${host}/cairn/hello@${image.index.digest}`]);
    expect(JSON.parse(stdout)).toMatchObject({ Env: [`PATH=${BUSYBOX_PATH}`, 'GREETING=hello = world'], Digest: image.index.digest });
    const copied = join(work, 'pulled');
    await run('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${host}/cairn/hello:1`, `oci:${copied}:pulled`]);
    // skopeo keeps the gzipped layer as it is, so what came back is the very image pushed.
    expect(await readOciImage(copied, 'pulled')).toMatchObject({ index: image.index, images: image.images });

    const again: string[] = [];
    await pushImage(image, `${host}/cairn/hello:again`, { onBlob: (d, outcome) => again.push(outcome) });
    expect(again).toEqual(['exists', 'exists']);
  });

  it('answers a token challenge with the credentials, and says so when the token service refuses them', async () => {
    const proxy = await startTokenAuthProxy(registry.url, { credentials: { username: 'ci', password: 'right' } });
    try {
      const host = proxy.url.replace('http://', '');
      const ok = await pushImage(image, `${host}/cairn/authed:1`, { credentials: { username: 'ci', password: 'right' } });
      expect(ok.digest).toBe(image.index.digest);
      expect(proxy.tokensIssued()).toBeGreaterThan(0);
      await expect(pushImage(image, `${host}/cairn/authed:2`, { credentials: { username: 'ci', password: 'wrong' } })).rejects.toThrow(
        /token service http:\/\/127\.0\.0\.1:\d+\/token refused a push token \(401\)/,
      );
    } finally {
      await proxy.stop();
    }
  });

  it('says which registry it cannot reach, and what is wrong with a bad target', async () => {
    const closed = await startRegistry();
    await closed.stop();
    await expect(pushImage(image, `127.0.0.1:${closed.port}/cairn/hello:1`)).rejects.toThrow(
      `cannot reach registry http://127.0.0.1:${closed.port}: ECONNREFUSED`,
    );
    await expect(pushImage(image, 'cairn/hello:1')).rejects.toThrow(/must start with the registry/);
    await expect(pushImage(image, `127.0.0.1:${registry.port}/Cairn/hello:1`)).rejects.toThrow(/lowercase/);
    await expect(pushImage(image, `127.0.0.1:${registry.port}/cairn/hello@sha256:${'0'.repeat(64)}`)).rejects.toThrow(/not a digest/);
  });

  it('reports what the registry refused, in its own words', async () => {
    // A registry that lacks every blob and refuses every upload: a read-only mirror.
    const server = createServer((req, res) =>
      req.method === 'HEAD'
        ? res.writeHead(404).end()
        : res.writeHead(403, { 'content-type': 'application/json' }).end('{"errors":[{"code":"DENIED","message":"read-only mirror"}]}'),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      await expect(pushImage(image, `127.0.0.1:${port}/cairn/hello:1`)).rejects.toThrow(
        `registry http://127.0.0.1:${port} refused the start of an upload of ${image.images[0]?.layers[0]?.digest} for 127.0.0.1:${port}/cairn/hello (403): DENIED: read-only mirror`,
      );
    } finally {
      server.close();
    }
  });
});

describe('loading into a Docker daemon', () => {
  let dockerd: RunningDockerd;
  beforeAll(async () => {
    dockerd = await startDockerd();
  }, 90_000);
  afterAll(async () => {
    await dockerd?.stop();
  }, 60_000);

  it('loads the image under its name with the config digest as its ID, and docker run runs it as configured', async () => {
    const { imageId } = await loadIntoDocker(image, 'cairn-test/hello:1', { socketPath: dockerd.socketPath });
    expect(imageId).toBe(image.images[0]?.config.digest);
    expect((await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', 'cairn-test/hello:1'])).trim()).toBe(imageId);
    const out = await dockerd.docker(['run', '--rm', '--network', 'none', 'cairn-test/hello:1']);
    expect(out.trim()).toBe('hello = world from /home/user as 1000:1000 default-arg');
    const args = await dockerd.docker(['run', '--rm', '--network', 'none', 'cairn-test/hello:1', 'given']);
    expect(args.trim()).toBe('hello = world from /home/user as 1000:1000 given');
  }, 120_000);

  it('writes the same archive for `docker load -i` twice, and says when the daemon is not there', async () => {
    await writeImageArchive(image, 'cairn-test/archived:1', join(work, 'a.tar'));
    await writeImageArchive(image, 'cairn-test/archived:1', join(work, 'b.tar'));
    expect(sha256(await readFile(join(work, 'a.tar')))).toBe(sha256(await readFile(join(work, 'b.tar'))));
    await dockerd.docker(['load', '-i', join(work, 'a.tar')]);
    expect((await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', 'cairn-test/archived:1'])).trim()).toBe(image.images[0]?.config.digest);
    await expect(loadIntoDocker(image, 'x:1', { socketPath: join(work, 'no.sock') })).rejects.toThrow(/cannot reach the Docker daemon at .*no\.sock: ENOENT/);
    await expect(loadIntoDocker(image, 'Bad Name', { socketPath: dockerd.socketPath })).rejects.toThrow(/invalid image name "Bad Name"/);
  }, 120_000);
});
