import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FetchError, RegistryFetcher, type FetchedImage } from '@cairn/fetcher';
import { writeOciImage, type ImageInput } from '@cairn/oci-image';
import { BUSYBOX_PATH, busyboxImage } from '../../../test/support/images.js';
import { startRegistry, startTokenAuthProxy, type RunningRegistry, type TokenAuthProxy } from '../../../test/support/registry.js';

const run = promisify(execFile);
const CREDENTIALS = { username: 'cairn', password: 'open sesame' };

let work: string;
let layout: string;
let registry: RunningRegistry | undefined;
let proxy: TokenAuthProxy | undefined;
/** Manifest digests: of busybox (pushed alone, without its index), and of each platform of cairn/multi. */
let busybox: string;
let amd64: string;
let arm64: string;
let fragileLayer: string;

/**
 * Copies `ref` from the test layout to the registry as skopeo would publish any image:
 * `all` copies the whole index, without it only the manifest for the host's platform.
 */
async function push(ref: string, all = false): Promise<void> {
  const target = `docker://127.0.0.1:${registry?.port}/${ref}`;
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', ...(all ? ['--all'] : []), `oci:${layout}:${ref}`, target]);
}

async function fetchWith(fetcher: RegistryFetcher, ref: string) {
  const rootfs = await mkdtemp(join(work, 'rootfs-'));
  const log: string[] = [];
  const image = await fetcher.fetch(ref, rootfs, (line) => log.push(line));
  return { rootfs, log, image };
}

async function failure(promise: Promise<{ image: FetchedImage }>): Promise<FetchError> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(FetchError);
  return error as FetchError;
}

const marked = async (arch: string): Promise<ImageInput> => {
  const rootfs = await mkdtemp(join(work, `${arch}-`));
  await writeFile(join(rootfs, 'arch'), arch);
  return { rootfs, config: { env: [['ARCH', arch]], architecture: arch } };
};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cairn-registry-test-'));
  layout = join(work, 'layout');
  registry = await startRegistry();
  const busyboxWritten = await busyboxImage(layout, 'cairn/busybox:latest', {
    env: [
      ['PATH', BUSYBOX_PATH],
      ['LANG', 'C.UTF-8'],
    ],
  });
  busybox = busyboxWritten.images[0]?.manifest.digest ?? '';
  await push('cairn/busybox:latest');
  const multi = await writeOciImage(layout, 'cairn/multi:latest', [await marked('arm64'), await marked('amd64')]);
  [arm64 = '', amd64 = ''] = multi.images.map((i) => i.manifest.digest);
  await push('cairn/multi:latest', true);

  const fragile = await mkdtemp(join(work, 'fragile-'));
  await writeFile(join(fragile, 'only-here'), 'a layer no other image shares');
  const written = await writeOciImage(layout, 'cairn/fragile:latest', [{ rootfs: fragile, config: { env: [] } }]);
  await push('cairn/fragile:latest');
  fragileLayer = written.images[0]?.layers[0]?.digest ?? '';
  proxy = await startTokenAuthProxy(registry.url, { credentials: CREDENTIALS });
}, 120_000);

afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('RegistryFetcher', () => {
  it('fetches an image skopeo pushed: files, env, and the digest the tag resolved to', async () => {
    const fetcher = new RegistryFetcher({ registry: registry?.url ?? '' });
    const { rootfs, log, image } = await fetchWith(fetcher, 'cairn/busybox');
    expect(await readFile(join(rootfs, 'bin/busybox'))).toEqual(await readFile('/usr/bin/busybox'));
    expect(await readlink(join(rootfs, 'bin/sh'))).toBe('busybox');
    expect(await readFile(join(rootfs, 'etc/passwd'), 'utf8')).toContain('user:x:1000:1000');
    expect(image).toEqual({
      env: [
        ['PATH', BUSYBOX_PATH],
        ['LANG', 'C.UTF-8'],
      ],
      digest: busybox,
    });
    expect(log).toContain(`resolved cairn/busybox to ${busybox}`);
  });

  it('fetches by digest, and from a registry named in the reference', async () => {
    const elsewhere = new RegistryFetcher({ registry: 'https://registry.invalid' });
    const byHost = await fetchWith(elsewhere, `127.0.0.1:${registry?.port}/cairn/busybox:latest`);
    expect(byHost.image.digest).toBe(busybox);
    const fetcher = new RegistryFetcher({ registry: registry?.url ?? '' });
    expect((await fetchWith(fetcher, `cairn/busybox@${busybox}`)).image.digest).toBe(busybox);
  });

  it('resolves a tag to the manifest digest, and fetches name@digest and name:tag@digest', async () => {
    const fetcher = new RegistryFetcher({ registry: registry?.url ?? '' });
    expect(await fetcher.resolve('cairn/busybox')).toBe(busybox);
    expect(await fetcher.resolve(`cairn/busybox:latest@${busybox}`)).toBe(busybox);
    expect((await fetchWith(fetcher, `cairn/busybox:latest@${busybox}`)).image.digest).toBe(busybox);
    // An index resolves to the index, so that a pinned reference still serves every platform.
    const index = await fetcher.resolve('cairn/multi');
    expect(index).not.toBe(amd64);
    const arm = new RegistryFetcher({ registry: registry?.url ?? '', platform: 'linux/arm64' });
    expect((await fetchWith(arm, `cairn/multi@${index}`)).image.digest).toBe(arm64);
  });

  it('says which tag or digest a registry does not have when resolving', async () => {
    const fetcher = new RegistryFetcher({ registry: registry?.url ?? '' });
    const missing = `sha256:${'1'.repeat(64)}`;
    await expect(fetcher.resolve('cairn/busybox:no-such-tag')).rejects.toThrow(`registry ${registry?.url} has no cairn/busybox:no-such-tag`);
    await expect(fetcher.resolve(`cairn/busybox@${missing}`)).rejects.toThrow(`has no cairn/busybox:${missing}`);
  });

  it('picks linux/amd64 from a multi-platform index unless told otherwise', async () => {
    const picked = await fetchWith(new RegistryFetcher({ registry: registry?.url ?? '' }), 'cairn/multi');
    expect(await readFile(join(picked.rootfs, 'arch'), 'utf8')).toBe('amd64');
    expect(picked.image).toEqual({ env: [['ARCH', 'amd64']], digest: amd64 });
    expect(picked.log[0]).toMatch(new RegExp(`^resolved cairn/multi to ${amd64} \\(linux/amd64 in index`));

    const arm = await fetchWith(new RegistryFetcher({ registry: registry?.url ?? '', platform: 'linux/arm64' }), 'cairn/multi');
    expect(await readdir(arm.rootfs)).toEqual(['arch']);
    expect(arm.image.digest).toBe(arm64);
  });

  it('says which image a registry does not have', async () => {
    const fetcher = new RegistryFetcher({ registry: registry?.url ?? '' });
    const error = await failure(fetchWith(fetcher, 'cairn/busybox:no-such-tag'));
    expect(error.message).toBe(`registry ${registry?.url} has no cairn/busybox:no-such-tag`);
  });

  it('detects a blob corrupted in the registry storage while it streams, and names it', async () => {
    const hex = fragileLayer.slice(7);
    const file = join(registry?.storage ?? '', 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = await readFile(file);
    const i = bytes.length - 50;
    bytes.writeUInt8(bytes.readUInt8(i) ^ 0xff, i);
    await writeFile(file, bytes);
    const fetcher = new RegistryFetcher({ registry: registry?.url ?? '' });
    const error = await failure(fetchWith(fetcher, 'cairn/fragile'));
    expect(error.message).toContain(`layer ${fragileLayer} is corrupt`);
  });

  describe('behind token auth', () => {
    it('refuses requests without a token it issued, with a Bearer challenge', async () => {
      const response = await fetch(`${proxy?.url}/v2/cairn/busybox/manifests/latest`, {
        headers: { authorization: 'Bearer made-up' },
      });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe(
        `Bearer realm="${proxy?.url}/token",service="cairn-test-registry",scope="repository:cairn/busybox:pull"`,
      );
    });

    it('fetches after the token round trip, with the credentials', async () => {
      const before = proxy?.tokensIssued() ?? 0;
      const fetcher = new RegistryFetcher({ registry: proxy?.url ?? '', credentials: CREDENTIALS });
      const { rootfs, image } = await fetchWith(fetcher, 'cairn/busybox');
      expect(image.digest).toBe(busybox);
      expect(await readlink(join(rootfs, 'bin/sh'))).toBe('busybox');
      expect(proxy?.tokensIssued()).toBe(before + 1);
    });

    it("fails with the token service's refusal when the credentials are wrong", async () => {
      const fetcher = new RegistryFetcher({ registry: proxy?.url ?? '', credentials: { ...CREDENTIALS, password: 'no' } });
      const error = await failure(fetchWith(fetcher, 'cairn/busybox'));
      expect(error.message).toBe(`the token service ${proxy?.url}/token refused a token (401)`);
    });
  });
});
