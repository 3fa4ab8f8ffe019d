/**
 * A job's `(network host)` step on a real worker-agent cannot reach the cluster's NATS
 * server on the worker's 127.0.0.1 (by default: its own network namespace behind
 * slirp4netns); a worker started with CAIRN_HOST_NETWORK=shared gives it the host's
 * namespace, NATS included, as OBuilder would. Real processes: the whole cluster, one
 * worker of each kind, each in a pool of its own.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_IMAGE, POOL, startCluster, type Cluster } from '../support/cluster.js';

const SHARED_POOL = 'linux-x86_64-shared';
let c: Cluster;
let work: string;

beforeAll(async () => {
  c = await startCluster({ workers: 1 });
  c.spawnLike(c.workers[0]!, 'w-shared', { CAIRN_WORKER_ID: 'w-shared', CAIRN_POOL: SHARED_POOL, CAIRN_HOST_NETWORK: 'shared' });
  await c.waitForWorkers(['w1', 'w-shared']);
  work = join(c.dir, 'network-work');
  await mkdir(join(work, 'ctx'), { recursive: true });
}, 240_000);

afterAll(async () => {
  await c?.stop();
}, 60_000);

/** Submits a (network host) step that waits for NATS's INFO greeting at `address`, and follows it. */
async function probe(pool: string, address: string, tag: string): Promise<string> {
  const shell = `(sleep 1; echo PING) | nc -w 3 ${address} ${c.nats.port} | head -c 4; echo; echo probed-${tag}`;
  const spec = join(work, `${tag}.spec`);
  await writeFile(spec, `((from ${BASE_IMAGE}) (shell /bin/sh -c) (run (network host) (shell ${JSON.stringify(shell)})))`);
  const run = await c.cli(['submit', '--pool', pool, '-f', spec, join(work, 'ctx'), '--follow']);
  expect(run.code, run.stderr).toBe(0);
  return run.stdout + run.stderr;
}

describe('(network host) on a worker', () => {
  it("cannot connect to the cluster's NATS on the worker's 127.0.0.1, by that address or 10.0.2.2", async () => {
    for (const [address, tag] of [
      ['127.0.0.1', 'loopback'],
      ['10.0.2.2', 'alias'],
    ] as const) {
      const log = await probe(POOL, address, tag);
      expect(log).toContain(`probed-${tag}`);
      expect(log).not.toContain('INFO');
    }
  });

  it('does, on a worker run with CAIRN_HOST_NETWORK=shared', async () => {
    const log = await probe(SHARED_POOL, '127.0.0.1', 'shared');
    expect(log).toContain('INFO\nprobed-shared');
  });
});
