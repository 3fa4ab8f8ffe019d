import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectedLog, makeHarness, spec, type Harness } from './engine-harness.js';

describe.each(['btrfs', 'xfs'] as const)('a full %s store', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness(kind, 'runc', kind === 'btrfs' ? 128 : 300);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('fails the step with a clear message, publishes nothing and corrupts nothing', async () => {
    const kept = await h.builder.build(spec('(run (shell "echo precious > /kept"))'), { log: () => undefined });
    const filler = spec('(run (shell "dd if=/dev/zero of=/big bs=1M count=2000"))');
    const log = new CollectedLog();
    const failure = await h.builder.build(filler, { log: log.log }).then(() => undefined, (e: Error) => e);
    expect(failure?.message).toMatch(/^\(run \(shell "dd .*"\)\) failed: the \w+ store at .* is full \(.* free.*\); nothing was published/);
    expect(log.output).toContain('No space left on device');
    expect(await h.store.withRootfs(kept, (root) => readFile(join(root, 'kept'), 'utf8'))).toBe('precious\n');
    // The failed step's space came back: the store works again.
    const after = await h.builder.build(spec('(run (shell "echo after > /after"))'), { log: () => undefined });
    expect(await h.store.exists(after)).toBe(true);
  });
});
