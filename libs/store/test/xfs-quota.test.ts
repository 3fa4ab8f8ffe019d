/**
 * The XFS project quota commands that hold an xfs or overlayfs (on XFS) build to its disk
 * limit, against a recording shim of xfs_quota (fixtures/xfs-quota-shim.mjs): this
 * machine's kernel has no quota support (no CONFIG_QUOTA: XFS refuses `-o prjquota`, ext4
 * says so on mount), so the refusal is all the store tests can reach for real.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mountContaining } from '../src/mount.js';
import { ProjectQuota } from '../src/xfs-quota.js';

const SHIM = fileURLToPath(new URL('./fixtures/xfs-quota-shim.mjs', import.meta.url));

describe('XFS project quotas (xfs_quota shim)', () => {
  let dir: string;
  let mountPoint: string;
  const path = process.env.PATH;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-xfs-quota-'));
    await mkdir(join(dir, 'bin'));
    await writeFile(join(dir, 'bin/xfs_quota'), `#!/bin/sh\nexec node ${SHIM} ${dir} "$@"\n`);
    await chmod(join(dir, 'bin/xfs_quota'), 0o755);
    process.env.PATH = `${join(dir, 'bin')}:${path}`;
    mountPoint = (await mountContaining(dir)).point;
  });
  afterAll(async () => {
    process.env.PATH = path;
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await mkdir(join(dir, 'tmp'), { recursive: true });
    await writeFile(join(dir, 'state.json'), JSON.stringify({ projects: {} }));
    await writeFile(join(dir, 'log.jsonl'), '');
  });

  const log = async () =>
    (await readFile(join(dir, 'log.jsonl'), 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as [string, string]);
  const setUsed = async (id: number, usedKiB: number) => {
    const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8'));
    state.projects[id].usedKiB = usedKiB;
    await writeFile(join(dir, 'state.json'), JSON.stringify(state));
  };

  it('gives the build a project of its own over its directories, limits it above what it uses, reads the limit back, and releases it', async () => {
    const upper = join(dir, 'layer/upper');
    const work = join(dir, 'layer/work');
    await mkdir(upper, { recursive: true });
    await mkdir(work);
    const quota = await ProjectQuota.start(upper, work);
    expect(quota.id).toBeGreaterThanOrEqual(2 ** 20);
    expect(quota.id).toBeLessThan(2 ** 31);
    await quota.limit(64 * 1024 ** 2);
    expect(await quota.reached()).toBe(false);
    // Within 1/16 of the limit (4 MiB at least): the step is stopped as having reached it.
    await setUsed(quota.id, 64 * 1024 - 1024);
    expect(await quota.reached()).toBe(true);
    await quota.release();
    expect(await log()).toEqual([
      [`project -s -p ${upper} -p ${work} ${quota.id}`, mountPoint],
      [`quota -p -v -N -n -b ${quota.id}`, mountPoint],
      [`limit -p bhard=65536k ${quota.id}`, mountPoint],
      [`quota -p -v -N -n -b ${quota.id}`, mountPoint],
      [`quota -p -v -N -n -b ${quota.id}`, mountPoint],
      [`quota -p -v -N -n -b ${quota.id}`, mountPoint],
      [`limit -p bhard=0 ${quota.id}`, mountPoint],
    ]);
  });

  it('counts what the project already holds (a copy into it) on top of the limit', async () => {
    const quota = await ProjectQuota.start(join(dir, 'tmp'));
    await setUsed(quota.id, 3000);
    await quota.limit(1024 ** 2);
    expect((await log()).map(([c]) => c)).toContain(`limit -p bhard=${3000 + 1024}k ${quota.id}`);
  });

  it('fails, naming the project and the mount, when xfs_quota exits 0 without setting the limit', async () => {
    await writeFile(join(dir, 'state.json'), JSON.stringify({ projects: {}, ignoreLimits: true }));
    const quota = await ProjectQuota.start(join(dir, 'tmp'));
    await expect(quota.limit(1024 ** 2)).rejects.toThrow(
      `xfs_quota did not set the limit of XFS project ${quota.id} on ${mountPoint} (1024 KiB; it reads 0 KiB)`,
    );
  });
});
