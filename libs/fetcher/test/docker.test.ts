import { chown, mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerFetcher, FetchError } from '@cairn/fetcher';
import { BUSYBOX_PATH } from '../../../test/support/images.js';
import { startDockerd, type RunningDockerd } from '../../../test/support/dockerd.js';
import { makeBusyboxRootfs } from '../../../test/support/rootfs.js';

let work: string;
let dockerd: RunningDockerd | undefined;
let imageId: string;

const daemon = () => {
  if (!dockerd) throw new Error('dockerd did not start');
  return dockerd;
};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cairn-docker-test-'));
  dockerd = await startDockerd();
  const rootfs = join(work, 'busybox');
  await mkdir(rootfs);
  await makeBusyboxRootfs(rootfs);
  await mkdir(join(rootfs, 'home/user'), { recursive: true });
  await writeFile(join(rootfs, 'home/user/notes'), 'mine\n');
  await chown(join(rootfs, 'home/user/notes'), 1000, 1000);
  await daemon().importRootfs(rootfs, 'cairn/busybox:imported', [`ENV PATH=${BUSYBOX_PATH}`, 'ENV GREETING=hello']);
  imageId = (await daemon().docker(['image', 'inspect', '--format', '{{.Id}}', 'cairn/busybox:imported'])).trim();
}, 120_000);

afterAll(async () => {
  await dockerd?.stop();
  await rm(work, { recursive: true, force: true });
}, 60_000);

describe('DockerFetcher', () => {
  it('exports an imported image: files, owners, env and the image ID; no container is left', async () => {
    const rootfs = await mkdtemp(join(work, 'rootfs-'));
    const log: string[] = [];
    const fetcher = new DockerFetcher({ socketPath: daemon().socketPath });
    const image = await fetcher.fetch('cairn/busybox:imported', rootfs, (line) => log.push(line));
    expect(image).toEqual({
      env: [
        ['PATH', BUSYBOX_PATH],
        ['GREETING', 'hello'],
      ],
      digest: imageId,
    });
    expect(log).toContain(`resolved cairn/busybox:imported to ${imageId}`);
    expect(await readFile(join(rootfs, 'bin/busybox'))).toEqual(await readFile('/usr/bin/busybox'));
    expect(await readlink(join(rootfs, 'bin/ls'))).toBe('busybox');
    const notes = await stat(join(rootfs, 'home/user/notes'));
    expect([notes.uid, notes.gid]).toEqual([1000, 1000]);
    expect((await stat(join(rootfs, 'tmp'))).mode & 0o7777).toBe(0o1777);
    expect(await daemon().docker(['ps', '-a', '-q'])).toBe('');
  });

  it('resolves a tag to the image ID and fetches the pinned reference by it', async () => {
    const fetcher = new DockerFetcher({ socketPath: daemon().socketPath });
    expect(await fetcher.resolve('cairn/busybox:imported')).toBe(imageId);
    for (const pinned of [`cairn/busybox@${imageId}`, `cairn/busybox:imported@${imageId}`]) {
      expect(await fetcher.resolve(pinned)).toBe(imageId);
      const rootfs = await mkdtemp(join(work, 'rootfs-'));
      expect((await fetcher.fetch(pinned, rootfs, () => {})).digest).toBe(imageId);
    }
    const other = `sha256:${'2'.repeat(64)}`;
    await expect(fetcher.resolve(`cairn/busybox:imported@${other}`)).rejects.toThrow(`no image cairn/busybox:imported@${other} in the Docker daemon`);
    await expect(fetcher.resolve('cairn/absent:1')).rejects.toBeInstanceOf(FetchError);
  });

  it('names an image the daemon lacks, and pulls nothing', async () => {
    const rootfs = await mkdtemp(join(work, 'rootfs-'));
    const fetcher = new DockerFetcher({ socketPath: daemon().socketPath });
    const error = await fetcher.fetch('cairn/absent:1', rootfs, () => {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toContain('no image cairn/absent:1 in the Docker daemon');
    expect((await daemon().docker(['images', '-q'])).trim().split('\n')).toHaveLength(1);
  });

  it('removes the container even when unpacking fails', async () => {
    const fetcher = new DockerFetcher({ socketPath: daemon().socketPath });
    const missing = join(work, 'no-such-dir');
    await expect(fetcher.fetch('cairn/busybox:imported', missing, () => {})).rejects.toBeInstanceOf(FetchError);
    expect(await daemon().docker(['ps', '-a', '-q'])).toBe('');
  });
});
