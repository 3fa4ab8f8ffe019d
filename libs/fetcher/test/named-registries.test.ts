import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FetchError, parseFetcherSpec } from '@cairn/fetcher';
import { pushImage, type OciImage } from '@cairn/oci-image';
import { busyboxImage } from '../../../test/support/images.js';
import { startRegistry, type RunningRegistry } from '../../../test/support/registry.js';

// `--fetcher oci:LAYOUT` (the machine config's default) also reaches the registry a name
// carries, when the layout has no image of that name: `cairn up`'s registry, with no setting.
let work: string;
let layout: string;
let registry: RunningRegistry;
let local: OciImage;
let published: OciImage;
let host: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cairn-named-registries-'));
  layout = join(work, 'layout');
  registry = await startRegistry();
  host = `127.0.0.1:${registry.port}`;
  local = await busyboxImage(layout, 'busybox:latest', { env: [['FROM', 'layout']] });
  // Published from a layout of its own, so the machine's layout does not have it.
  published = await busyboxImage(join(work, 'other'), 'ocaml:4.13', { env: [['FROM', 'registry']] });
  await pushImage(published, `${host}/ocaml:4.13`);
  // A name with a host that the machine's layout does have.
  await busyboxImage(layout, `${host}/pinned:1`, { env: [['FROM', 'layout, with a host']] });
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const fetchEnv = async (image: string) => {
  const rootfs = await mkdtemp(join(work, 'rootfs-'));
  const fetched = await parseFetcherSpec(`oci:${layout}`).fetch(image, rootfs, () => undefined);
  return { env: Object.fromEntries(fetched.env), digest: fetched.digest, rootfs };
};

it('fetches short names from the layout and a name with a registry host from that registry', async () => {
  expect((await fetchEnv('busybox')).env.FROM).toBe('layout');
  const fromRegistry = await fetchEnv(`${host}/ocaml:4.13`);
  expect(fromRegistry.env.FROM).toBe('registry');
  expect(fromRegistry.digest).toBe(published.images[0]!.manifest.digest);
  expect(await readFile(join(fromRegistry.rootfs, 'bin', 'busybox'))).toBeInstanceOf(Buffer);
  // Pinned as the spec-compiler pins it: resolve, then fetch by digest.
  const fetcher = parseFetcherSpec(`oci:${layout}`);
  const digest = await fetcher.resolve(`${host}/ocaml:4.13`);
  expect(digest).toBe(published.index.digest);
  expect((await fetchEnv(`${host}/ocaml:4.13@${digest}`)).env.FROM).toBe('registry');
});

it('prefers the layout for a name with a host that it has, and never sends a short name to a registry', async () => {
  expect((await fetchEnv(`${host}/pinned:1`)).env.FROM).toBe('layout, with a host');
  const error = await fetchEnv('ocaml:4.13').catch((e: unknown) => e);
  expect(error).toBeInstanceOf(FetchError);
  expect((error as Error).message).toMatch(/^no image ocaml:4.13 in OCI layout .*; it has: /);
  expect(local.index.digest).toBe(await parseFetcherSpec(`oci:${layout}`).resolve('busybox'));
});

it('says which registry lacks a name with a host that neither has', async () => {
  const error = await fetchEnv(`${host}/nothing:1`).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(FetchError);
  expect((error as Error).message).toBe(`registry http://${host} has no nothing:1`);
});
