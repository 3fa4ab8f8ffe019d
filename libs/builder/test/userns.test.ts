/**
 * Issue 18: a step in a user namespace (userns remap) leaves the store what a step on the
 * host's IDs leaves, so that both give the same step IDs, the same files, owners and
 * modes, and share caches. On every store runc builds on (btrfs subvolumes, overlayfs
 * layers, rsync copies, xfs reflinks, zfs-fuse clones: FUSE, so staged, fuse-staging.ts),
 * with a copy step, a cache and a second user.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayoutFetcher } from '@cairn/fetcher';
import { createSandbox, type UsernsMode } from '@cairn/sandbox';
import { parseStoreSpec } from '@cairn/store';
import { Builder } from '../src/index.js';
import { busyboxImage } from '../../../test/support/images.js';
import { withBtrfs, withXfs, type TestFilesystem } from '../../../test/support/filesystems.js';
import { withZfsPool, type TestPool } from '../../../test/support/zfs.js';
import { BASE, spec } from './engine-harness.js';
import { listing } from './tree-listing.js';

const SPEC = spec(`
  (copy (src app) (dst /app))
  (run (cache (data (target /var/cache/data))) (shell "echo run >> /var/cache/data/runs; cp /var/cache/data/runs /app/runs; chmod 4755 /app/tool; printf aaaa > /app/same; touch -d @1000000000 /app/same; tr -s ' ' < /proc/self/uid_map"))
  (run (shell "mkdir -p /home/user && chown 1000:1000 /home/user && su user -c 'echo mine > /home/user/file'; ln -s /app/tool /bin/tool; printf bbbb > /app/same; touch -d @1000000000 /app/same"))`);

describe.each(['btrfs', 'overlayfs', 'rsync', 'xfs', 'zfs'] as const)('%s: userns remap against host', (kind) => {
  let dir: string;
  let fs: TestFilesystem | undefined;
  let pool: TestPool | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `cairn-userns-${kind}-`));
    await busyboxImage(join(dir, 'images'), BASE);
    await mkdir(join(dir, 'context/app'), { recursive: true });
    await writeFile(join(dir, 'context/app/tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
    pool = kind === 'zfs' ? await withZfsPool() : undefined;
    fs = kind === 'btrfs' ? await withBtrfs({ sizeMb: 512 }) : kind === 'xfs' ? await withXfs({ sizeMb: 512 }) : pool;
  }, 120_000);
  afterAll(async () => {
    await fs?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const build = async (userns: UsernsMode, stateDir = join(dir, `state-${userns}`), storeName = `store-${userns}`) => {
    const root = join(fs?.path ?? dir, storeName);
    // A ZFS store is a dataset of the pool, mounted at /POOL/store-MODE.
    const store = parseStoreSpec(pool ? `zfs:${pool.name}/${storeName}` : `${kind}:${root}`);
    const sandbox = createSandbox('runc', { stateDir, userns });
    const builder = await Builder.open({
      store,
      sandbox,
      fetcher: new OciLayoutFetcher(join(dir, 'images')),
      dbPath: join(dir, `db-${userns}.sqlite`),
      secretKey: 'test-key',
    });
    try {
      const ids: string[] = [];
      const output: Uint8Array[] = [];
      const id = await builder.build(SPEC, {
        contextDir: join(dir, 'context'),
        log: (e) => void (e.tag === 'output' && output.push(e.data)),
        onStep: (s) => void ids.push(s.id),
      });
      return { id, ids: [...new Set(ids)], output: Buffer.concat(output).toString(), files: await store.withRootfs(id, (rootfs) => listing(rootfs)) };
    } finally {
      builder.close();
    }
  };

  it('gives the same step IDs and the same files, owners and modes', async () => {
    const host = await build('host');
    const remap = await build('remap');
    // The step's output is not in its ID: each ran in its own way.
    expect(host.output).toContain(' 0 0 4294967295\n');
    expect(remap.output).toContain(' 0 100000 65536\n');
    expect(remap.ids).toEqual(host.ids);
    expect(remap.id).toBe(host.id);
    expect(remap.files).toEqual(host.files);
    expect(remap.files).toContain(`app/tool 0:0 104755 ${createHash('sha256').update('#!/bin/sh\necho tool\n').digest('hex').slice(0, 12)}`);
    // Same size and mtime as the step before left it: only its content tells the change.
    expect(remap.files).toContain(`app/same 0:0 100644 ${createHash('sha256').update('bbbb').digest('hex').slice(0, 12)}`);
    expect(remap.files.find((f) => f.startsWith('home/user/file '))).toMatch(/^home\/user\/file 1000:1000 /);
  }, 120_000);

  if (kind === 'zfs') {
    // The copies are made beside the step's bundle, which must then not be on FUSE itself.
    it('refuses remap with the sandbox state on FUSE too, naming the path and what to do', async () => {
      await expect(build('remap', join(pool!.path, 'state'), 'store-state-on-fuse')).rejects.toThrow(
        new RegExp(
          `userns remap: ${pool!.path}/state\\.bundles/.* is on a FUSE filesystem.* put the sandbox's state dir on another filesystem, or use userns host`,
        ),
      );
    }, 120_000);
  }
});
