import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FetchError, OciLayoutFetcher } from '@cairn/fetcher';
import { writeOciArchive, writeOciImage, type Descriptor, type ImageConfig, type OciImage } from '@cairn/oci-image';
import { BUSYBOX_PATH } from '../../../test/support/images.js';
import { makeAwkwardRootfs, makeBusyboxRootfs } from '../../../test/support/rootfs.js';
import { describeTree } from './tree.js';

const run = promisify(execFile);

let work: string;
let layout: string;
let source: string;
let image: OciImage;
/** The digest of `image`'s one manifest: what a fetch of it reports. */
let manifest: string;
const ENV: [string, string][] = [
  ['PATH', BUSYBOX_PATH],
  ['GREETING', 'hello = world'],
];

const fresh = () => mkdtemp(join(work, 'rootfs-'));

/** An image of one platform, the host's, from `rootfs`. */
const writeImage = (dir: string, ref: string, rootfs: string, config: ImageConfig, parent?: string) =>
  writeOciImage(dir, ref, [{ rootfs, config }], { parent });
const manifestOf = (written: OciImage) => written.images[0]?.manifest.digest ?? '';

async function fetchFrom(path: string, ref: string, options: { platform?: string } = {}) {
  const rootfs = await fresh();
  const log: string[] = [];
  const image = await new OciLayoutFetcher(path, options).fetch(ref, rootfs, (line) => log.push(line));
  return { rootfs, log, image };
}

async function fetchError(path: string, ref: string, options: { platform?: string } = {}): Promise<FetchError> {
  const error = await fetchFrom(path, ref, options).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(FetchError);
  return error as FetchError;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cairn-oci-layout-'));
  layout = join(work, 'layout');
  source = join(work, 'source');
  await mkdir(source);
  await makeAwkwardRootfs(source);
  image = await writeImage(layout, 'cairn/test:latest', source, { env: ENV, cmd: ['/bin/sh'] });
  manifest = manifestOf(image);
}, 60_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('writeOciImage and OciLayoutFetcher', () => {
  it('round-trips files, modes, setuid, owners, symlinks, hard links and env', async () => {
    const { rootfs, log, image: fetched } = await fetchFrom(layout, 'cairn/test');
    expect(await describeTree(rootfs)).toEqual(await describeTree(source));
    expect((await stat(join(rootfs, 'usr/bin/su'))).mode & 0o7777).toBe(0o4755);
    const notes = await stat(join(rootfs, 'home/user/notes'));
    expect([notes.uid, notes.gid]).toEqual([1000, 1000]);
    expect((await stat(join(rootfs, 'data/b'))).ino).toBe((await stat(join(rootfs, 'data/a'))).ino);
    expect(fetched).toEqual({ env: ENV, digest: manifest });
    expect(log).toContain(`resolved cairn/test to ${manifest} (linux/amd64 in index ${image.index.digest})`);
    // The result is a working root filesystem, not just the right bytes.
    const { stdout } = await run('chroot', [rootfs, '/bin/sh', '-c', 'echo $((6 * 7))']);
    expect(stdout.trim()).toBe('42');
  });

  it('re-writing a name replaces its entry in index.json, name meaning name:latest', async () => {
    const dir = join(work, 'rewrite');
    const first = await writeImage(dir, 'cairn/again', source, { env: ENV });
    const second = await writeImage(dir, 'cairn/again:latest', source, { env: [...ENV, ['EXTRA', '1']] });
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    expect(index.manifests.map((d) => [d.annotations?.['org.opencontainers.image.ref.name'], d.digest])).toEqual([['cairn/again:latest', second.index.digest]]);
    expect(second.index.digest).not.toBe(first.index.digest);
    // Skopeo reads the layout as written: the format is OCI, not just Cairn's own.
    const { stdout: raw } = await run('skopeo', ['inspect', '--raw', `oci:${dir}:cairn/again:latest`]);
    expect(JSON.parse(raw).manifests[0].mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const { stdout } = await run('skopeo', ['inspect', '--config', `oci:${dir}:cairn/again:latest`]);
    expect(JSON.parse(stdout).config.Env).toContain('EXTRA=1');
  });

  it('accepts name, name:tag and name@digest, of the index or of its manifest', async () => {
    const pins = [image.index.digest, manifest].flatMap((d) => [`cairn/test@${d}`, `cairn/test:latest@${d}`]);
    for (const ref of ['cairn/test', 'cairn/test:latest', ...pins]) {
      expect((await fetchFrom(layout, ref)).image.digest).toBe(manifest);
    }
    const other = `sha256:${'0'.repeat(64)}`;
    expect((await fetchError(layout, `cairn/test@${other}`)).message).toContain('no image');
  });

  it('resolves a tag to the digest it names (the index) without unpacking, and a pinned reference to itself', async () => {
    const fetcher = new OciLayoutFetcher(layout);
    expect(await fetcher.resolve('cairn/test')).toBe(image.index.digest);
    expect(await fetcher.resolve('cairn/test:latest')).toBe(image.index.digest);
    expect(await fetcher.resolve(`cairn/test:latest@${image.index.digest}`)).toBe(image.index.digest);
    expect(await fetcher.resolve(`cairn/test:latest@${manifest}`)).toBe(manifest);
    const error = await fetcher.resolve('cairn/test:nope').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toContain('no image cairn/test:nope');
  });

  it('refuses a reference whose index or manifest blob does not hash to the digest naming it', async () => {
    const dir = join(work, 'tampered');
    const forge = async (digest: string) => {
      const blob = join(dir, 'blobs/sha256', digest.slice(7));
      const document = JSON.parse(await readFile(blob, 'utf8')) as Record<string, unknown>;
      await chmod(blob, 0o644);
      await writeFile(blob, JSON.stringify({ ...document, annotations: { forged: 'yes' } }));
    };
    const index = (await writeImage(dir, 'cairn/tampered', source, { env: ENV })).index.digest;
    await forge(index);
    // Other settings, so that this image shares no index or manifest with the first.
    const forgedManifest = manifestOf(await writeImage(dir, 'cairn/tampered-manifest', source, { env: [...ENV, ['WHICH', '2']] }));
    await forge(forgedManifest);
    const cases: [string, string][] = [
      ['cairn/tampered', index],
      [`cairn/tampered@${index}`, index],
      [`cairn/tampered-manifest@${forgedManifest}`, forgedManifest],
    ];
    for (const [ref, digest] of cases) {
      const error = await new OciLayoutFetcher(dir).resolve(ref).catch((e: unknown) => e);
      expect((error as FetchError).message).toContain(`manifest ${digest} is corrupt`);
      expect((await fetchError(dir, ref)).message).toContain(`manifest ${digest} is corrupt`);
    }
    // A tag names the index, which is intact: resolving it reads no further, fetching does.
    expect((await fetchError(dir, 'cairn/tampered-manifest')).message).toContain(`manifest ${forgedManifest} is corrupt`);
  });

  it('lists the images it has when asked for one it has not', async () => {
    const error = await fetchError(layout, 'cairn/nope:1.0');
    expect(error.message).toContain('no image cairn/nope:1.0');
    expect(error.message).toContain('cairn/test:latest');
  });

  it('reads a layout tarball in place', async () => {
    const tar = join(work, 'layout.tar');
    await writeOciArchive(layout, tar);
    const { rootfs, image: fetched } = await fetchFrom(tar, 'cairn/test');
    expect(await describeTree(rootfs)).toEqual(await describeTree(source));
    expect(fetched.digest).toBe(manifest);
    const { stdout } = await run('skopeo', ['inspect', `oci-archive:${tar}:cairn/test:latest`]);
    expect(JSON.parse(stdout).Layers).toHaveLength(1);
  });

  it('applies a second layer with whiteouts and an opaque directory over its parent', async () => {
    const dir = join(work, 'two-layers');
    const base = await mkdtemp(join(work, 'base-'));
    await makeBusyboxRootfs(base);
    await writeFile(join(base, 'etc/gone'), 'deleted by the upper layer\n');
    await mkdir(join(base, 'cache/sub'), { recursive: true });
    await writeFile(join(base, 'cache/old'), 'o');
    await writeFile(join(base, 'cache/sub/older'), 'o');
    await mkdir(join(base, 'dir'));
    await writeFile(join(base, 'dir/x'), 'x');
    await writeImage(dir, 'cairn/base', base, { env: ENV });

    const upper = await mkdtemp(join(work, 'upper-'));
    await chmod(upper, 0o755);
    await mkdir(join(upper, 'etc'));
    await writeFile(join(upper, 'etc/.wh.gone'), '');
    await writeFile(join(upper, 'etc/added'), 'new\n');
    await mkdir(join(upper, 'cache'));
    await writeFile(join(upper, 'cache/.wh..wh..opq'), '');
    await writeFile(join(upper, 'cache/fresh'), 'f');
    await writeFile(join(upper, '.wh.dir'), '');
    await mkdir(join(upper, 'dir'));
    await writeFile(join(upper, 'dir/y'), 'y');
    const top = await writeImage(dir, 'cairn/two', upper, { env: [['PATH', '/bin']] }, 'cairn/base');

    const { rootfs, log, image: fetched } = await fetchFrom(dir, 'cairn/two');
    expect(fetched).toEqual({ env: [['PATH', '/bin']], digest: manifestOf(top) });
    expect(log.filter((l) => l.startsWith('applying layer'))).toHaveLength(2);
    expect((await readdir(join(rootfs, 'etc'))).sort()).toEqual(['added', 'group', 'passwd']);
    expect(await readdir(join(rootfs, 'cache'))).toEqual(['fresh']);
    expect(await readdir(join(rootfs, 'dir'))).toEqual(['y']);
    expect((await describeTree(rootfs)).filter((l) => l.includes('.wh.'))).toEqual([]);
    const { stdout } = await run('chroot', [rootfs, '/bin/cat', '/etc/added']);
    expect(stdout).toBe('new\n');
  });

  it('detects a corrupt blob and names it', async () => {
    const dir = join(work, 'corrupt');
    const written = await writeImage(dir, 'cairn/fragile', source, { env: ENV });
    const fragileManifest = manifestOf(written);
    const document = JSON.parse(await readFile(join(dir, 'blobs/sha256', fragileManifest.slice(7)), 'utf8')) as {
      layers: Descriptor[];
    };
    const layer = document.layers[0]?.digest ?? '';
    const blob = join(dir, 'blobs/sha256', layer.slice(7));
    const bytes = await readFile(blob);
    const i = bytes.length - 100;
    bytes.writeUInt8(bytes.readUInt8(i) ^ 0xff, i);
    await writeFile(blob, bytes);
    const error = await fetchError(dir, 'cairn/fragile');
    expect(error.message).toContain(`layer ${layer} is corrupt`);

    const manifestBlob = join(dir, 'blobs/sha256', fragileManifest.slice(7));
    await writeFile(manifestBlob, `${await readFile(manifestBlob, 'utf8')} `);
    expect((await fetchError(dir, 'cairn/fragile')).message).toContain(`manifest ${fragileManifest} is corrupt`);
  });

  it('picks the platform from a multi-platform index: linux/amd64 unless told otherwise', async () => {
    const dir = join(work, 'multi');
    const marked = async (arch: string) => {
      const rootfs = await mkdtemp(join(work, `${arch}-`));
      await writeFile(join(rootfs, 'arch'), arch);
      return { rootfs, config: { env: [['ARCH', arch]], architecture: arch } satisfies ImageConfig };
    };
    const multi = await writeOciImage(dir, 'cairn/multi', [await marked('arm64'), await marked('amd64')]);
    const [arm64 = '', amd64 = ''] = multi.images.map((i) => i.manifest.digest);

    const picked = await fetchFrom(dir, 'cairn/multi');
    expect(await readFile(join(picked.rootfs, 'arch'), 'utf8')).toBe('amd64');
    expect(picked.image.digest).toBe(amd64);
    expect(picked.log[0]).toMatch(new RegExp(`^resolved cairn/multi to ${amd64} \\(linux/amd64 in index ${multi.index.digest}`));

    const arm = await fetchFrom(dir, 'cairn/multi', { platform: 'linux/arm64' });
    expect(await readFile(join(arm.rootfs, 'arch'), 'utf8')).toBe('arm64');
    expect((await fetchFrom(dir, `cairn/multi@${arm64}`)).image.digest).toBe(arm64);

    const error = await fetchError(dir, 'cairn/multi', { platform: 'linux/s390x' });
    expect(error.message).toMatch(/no image for linux\/s390x; it offers: linux\/arm64, linux\/amd64/);
  });

  it("picks the host's platform by default, the one an image written on the host is labelled with", async () => {
    const dir = join(work, 'multi-host');
    const arch = Object.getOwnPropertyDescriptor(process, 'arch')!;
    // An arm64 host: images written there say arm64, and a fetch there picks arm64.
    Object.defineProperty(process, 'arch', { ...arch, value: 'arm64' });
    try {
      const rootfs = await mkdtemp(join(work, 'host-'));
      await writeFile(join(rootfs, 'arch'), 'host');
      const other = await mkdtemp(join(work, 'amd64-'));
      await writeFile(join(other, 'arch'), 'amd64');
      const multi = await writeOciImage(dir, 'cairn/multi', [
        { rootfs: other, config: { architecture: 'amd64' } },
        { rootfs, config: {} },
      ]);
      expect(multi.images.map((i) => i.manifest.platform?.architecture)).toEqual(['amd64', 'arm64']);
      const picked = await fetchFrom(dir, 'cairn/multi');
      expect(await readFile(join(picked.rootfs, 'arch'), 'utf8')).toBe('host');
      expect(picked.image.digest).toBe(multi.images[1]?.manifest.digest);
    } finally {
      Object.defineProperty(process, 'arch', arch);
    }
  });
});
