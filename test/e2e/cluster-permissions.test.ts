/**
 * The whole cluster under the NATS users and permissions tools/nats-config.mjs writes:
 * every service, worker and client connects as itself, and a build still goes from
 * `cairn submit` to the worker and back; one client cannot read another's job or logs,
 * and a client cannot use the operators' subjects.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PermissionViolationError } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, subjects } from '@cairn/contracts';
import { BASE_IMAGE, POOL, startCluster, type Cluster } from '../support/cluster.js';

const SECRET = 'permission-test-secret-value';
let c: Cluster;
let work: string;

beforeAll(async () => {
  c = await startCluster({ workers: 1, clients: ['alice', 'bob'] });
  work = join(c.dir, 'work');
  await mkdir(join(work, 'ctx'), { recursive: true });
  await writeFile(join(work, 'ctx', 'input.txt'), 'from the context\n');
  await writeFile(join(work, 'secret'), SECRET);
  await writeFile(
    join(work, 'build.spec'),
    `((from ${BASE_IMAGE}) (shell /bin/sh -c)
      (copy (src input.txt) (dst /out/input.txt))
      (run (secrets (s (target /run/secrets/s))) (shell "test -s /run/secrets/s && echo has-secret"))
      (run (shell "cat /out/input.txt")))`,
  );
}, 240_000);

afterAll(async () => {
  await c?.stop();
  // A bound for a hang: stopping gives each process up to 30 s to drain.
}, 60_000);

describe('the cluster under per-role NATS permissions', () => {
  let job = '';

  it("runs alice's build end to end: context upload, secret, worker, live log, artifact", async () => {
    const run = await c.cli(
      [
        'submit',
        '--pool',
        POOL,
        '-f',
        join(work, 'build.spec'),
        join(work, 'ctx'),
        '--secret',
        `s:${join(work, 'secret')}`,
        '--output',
        '/out/input.txt',
        '--follow',
        '--json',
      ],
      { client: 'alice' },
    );
    expect(run.stderr).toContain('has-secret');
    expect(run.stderr).toContain('from the context');
    expect(run.stderr).not.toContain(SECRET);
    expect(run.code).toBe(0);
    job = (JSON.parse(run.stdout) as { job: string }).job;
    expect((await c.cli(['logs', job], { client: 'alice' })).stdout).toContain('from the context');
  });

  it("bob cannot see alice's job, its logs, or cancel it", async () => {
    for (const verb of [
      ['status', job],
      ['logs', job],
      ['cancel', job],
    ]) {
      const r = await c.cli(verb, { client: 'bob' });
      expect(r.code, verb.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/no job .* for client bob/);
    }
  });

  it("NATS itself refuses bob a subscription to alice's logs and a worker's subjects", async () => {
    const creds = c.credentials('bob');
    const bob = await connectBus({ servers: c.nats.url, name: 'bob-probe', user: 'bob', pass: String(creds.CAIRN_NATS_PASSWORD), inboxPrefix: '_INBOX_bob' });
    const violations: string[] = [];
    void (async () => {
      for await (const s of bob.status()) if (s.type === 'error' && s.error instanceof PermissionViolationError) violations.push(s.error.message);
    })();
    try {
      bob.subscribe(subjects.logsOfClient('alice'));
      bob.publish(subjects.toScheduler('w1', 'complete'), '{}');
      await bob.flush();
      await expect.poll(() => violations.length, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
      expect(violations.join('\n')).toMatch(/cairn\.v1\.logs\.alice/);
      expect(violations.join('\n')).toMatch(/cairn\.v1\.sched\.w1\.complete/);
    } finally {
      await bob.close();
    }
  });

  it('operators list workers; a client may not', async () => {
    const ops = await c.cli(['admin', 'workers', '--json'], { client: 'ops' });
    expect(ops.code).toBe(0);
    expect(JSON.parse(ops.stdout)).toEqual([expect.objectContaining({ worker: 'w1', connected: true })]);
    const alice = await c.cli(['admin', 'workers'], { client: 'alice', timeoutMs: 60_000 });
    expect(alice.code).not.toBe(0);
  });
});
