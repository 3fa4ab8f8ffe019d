import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectedLog, makeHarness, spec, type Harness } from './engine-harness.js';

// crun is a drop-in for runc: the same engine, the same steps, the same IDs.
describe('engine with the crun runtime', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness('btrfs', 'crun');
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('builds and replays with crun, producing the IDs runc would', async () => {
    const s = spec('(run (cache (c (target /c))) (shell "echo via-crun | tee /c/seen; id -u"))');
    const log = new CollectedLog();
    const id = await h.builder.build(s, { log: log.log });
    expect(log.output).toContain('via-crun\n0\n');
    expect(h.sandbox.kind).toBe('crun');
    const runc = await makeHarness('overlayfs', 'runc');
    try {
      expect(await runc.builder.build(s, { log: () => undefined })).toBe(id);
    } finally {
      await runc.cleanup();
    }
    const again = new CollectedLog();
    expect(await h.builder.build(s, { log: again.log })).toBe(id);
    expect(again.notes.at(-1)).toBe(`---> using "${id}" from cache`);
  });
});
