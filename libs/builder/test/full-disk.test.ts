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
    const failure = await h.builder.build(filler, { log: log.log }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(failure?.message).toMatch(/^\(run \(shell "dd .*"\)\) failed: the \w+ store at .* is full \(.* free.*\); nothing was published/);
    expect(log.output).toContain('No space left on device');
    expect(await h.store.withRootfs(kept, (root) => readFile(join(root, 'kept'), 'utf8'))).toBe('precious\n');
    // The failed step's space came back: the store works again.
    const after = await h.builder.build(spec('(run (shell "echo after > /after"))'), { log: () => undefined });
    expect(await h.store.exists(after)).toBe(true);
  });
});

// btrfs only: this machine's kernel has no quotas at all (no CONFIG_QUOTA), the xfs store's way.
describe.each(['btrfs'] as const)('a step past its disk limit on a %s store with quotas', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    // The machine allows 64 MiB a step; a job asking for more gets that.
    h = await makeHarness(kind, 'runc', undefined, { quotas: true, limits: { diskBytes: 64 * 1024 * 1024 } });
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('fails with the limit named, capped by the machine, publishes nothing, and the store builds on', async () => {
    const writer = spec('(run (shell "dd if=/dev/zero of=/big bs=1M count=200"))');
    const log = new CollectedLog();
    const failure = await h.builder.build(writer, { log: log.log, limits: { diskBytes: 1024 ** 3 } }).then(
      () => undefined,
      (e: Error) => e,
    );
    // The step's log is in its snapshot too: the limit may come first to the log's write, or to dd's.
    expect(failure?.message).toMatch(/^\(run \(shell "dd .*"\)\) failed: disk limit 64 MiB reached; nothing was published(: the command exited with code 1)?$/);
    expect(log.output).toMatch(/Disk quota exceeded/);
    // Within the limit, on the same store: built.
    const small = await h.builder.build(spec('(run (shell "dd if=/dev/zero of=/small bs=1M count=16"))'), { log: () => undefined });
    expect(await h.store.exists(small)).toBe(true);
  });
});
