import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE, makeHarness, spec, type Harness } from './engine-harness.js';

// Step IDs name what a step does, not where it ran: every backend must agree on them.
describe('the same spec on the runc/btrfs and the docker backends', () => {
  let runc: Harness;
  let docker: Harness;
  beforeAll(async () => {
    [runc, docker] = await Promise.all([makeHarness('btrfs'), makeHarness('docker')]);
  });
  afterAll(async () => {
    await Promise.all([runc?.cleanup(), docker?.cleanup()]);
  });

  it('gives the same step IDs', async () => {
    const ctx = await mkdtemp(join(tmpdir(), 'cairn-backends-'));
    await writeFile(join(ctx, 'input.txt'), 'from the context\n');
    const s = spec(
      '(workdir /w) (copy (src input.txt) (dst ./)) (copy (from (build child)) (src /made) (dst /w/made)) (run (shell "cat input.txt made"))',
      `(build child ((from ${BASE}) (shell /bin/sh -c) (run (shell "echo made-in-child > /made"))))`,
    );
    const [a, b] = await Promise.all([
      runc.builder.build(s, { log: () => undefined, contextDir: ctx }),
      docker.builder.build(s, { log: () => undefined, contextDir: ctx }),
    ]);
    expect(b).toBe(a);
  });

  it('passes the healthcheck on each', async () => {
    await runc.builder.healthcheck(BASE, 60_000);
    await docker.builder.healthcheck(BASE, 60_000);
  });
});
