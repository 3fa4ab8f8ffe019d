/**
 * Named caches belong to a trust domain: each client's own by default, so what client
 * alice leaves in cache `npm` is not in bob's `npm`, nor is a step that mounts it
 * replayed for bob; clients the operator puts in one domain (CAIRN_CACHE_DOMAINS on the
 * worker) share. Real processes: the whole cluster under per-role NATS users, one worker.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_IMAGE, POOL, startCluster, type Cluster } from '../support/cluster.js';

const PLANTED = 'planted-in-npm-cache';
let c: Cluster;
let work: string;

const cacheStep = (shell: string) => `((from ${BASE_IMAGE}) (shell /bin/sh -c) (run (cache (npm (target /root/.npm))) (shell ${JSON.stringify(shell)})))`;

beforeAll(async () => {
  c = await startCluster({ workers: 1, clients: ['alice', 'bob', 'carol', 'dave'], workerEnv: { CAIRN_CACHE_DOMAINS: 'team=carol,dave' } });
  work = join(c.dir, 'work');
  await mkdir(join(work, 'ctx'), { recursive: true });
  await writeFile(join(work, 'plant.spec'), cacheStep(`echo ${PLANTED} > /root/.npm/planted; echo planting`));
  await writeFile(join(work, 'look.spec'), cacheStep('cat /root/.npm/planted 2>/dev/null || echo nothing-there'));
}, 240_000);

afterAll(async () => {
  await c?.stop();
}, 60_000);

/** Builds `spec` as `client`; its log, and the snapshot it ended on. */
async function build(client: string, spec: 'plant' | 'look'): Promise<{ log: string; snapshot: string }> {
  const run = await c.cli(['submit', '--pool', POOL, '-f', join(work, `${spec}.spec`), join(work, 'ctx'), '--follow', '--json'], { client });
  expect(run.code, `${client} ${spec}: ${run.stderr}`).toBe(0);
  const { job } = JSON.parse(run.stdout) as { job: string };
  const status = await c.cli(['status', job, '--json'], { client });
  expect(status.code, status.stderr).toBe(0);
  const { snapshotId } = JSON.parse(status.stdout) as { snapshotId?: string };
  expect(snapshotId).toMatch(/^[0-9a-f]{64}$/);
  return { log: run.stderr, snapshot: snapshotId! };
}

describe('cache namespaces on a worker', () => {
  let alicePlanted = '';

  it('bob cannot read what alice wrote in cache npm; alice can', async () => {
    alicePlanted = (await build('alice', 'plant')).snapshot;
    const bob = await build('bob', 'look');
    expect(bob.log).toContain('nothing-there');
    expect(bob.log).not.toContain(PLANTED);
    // Her own next build does see it (and is not a replay of bob's look, which mounted bob's npm).
    const alice = await build('alice', 'look');
    expect(alice.log).toContain(PLANTED);
    expect(alice.snapshot).not.toBe(bob.snapshot);
  });

  it("the same step as alice's is built afresh for bob, not replayed from her snapshot", async () => {
    const bob = await build('bob', 'plant');
    expect(bob.snapshot).not.toBe(alicePlanted);
    // Alice's own repeat is a hit on her snapshot.
    expect((await build('alice', 'plant')).snapshot).toBe(alicePlanted);
  });

  it('clients the operator put in one domain share its caches and their steps', async () => {
    const carol = await build('carol', 'plant');
    expect(carol.snapshot).not.toBe(alicePlanted);
    const dave = await build('dave', 'look');
    expect(dave.log).toContain(PLANTED);
    expect((await build('dave', 'plant')).snapshot).toBe(carol.snapshot);
    // Outside the domain nothing of theirs shows.
    const bob = await build('bob', 'look');
    expect(bob.log).not.toContain(PLANTED);
    expect(bob.snapshot).not.toBe(dave.snapshot);
  });
});
