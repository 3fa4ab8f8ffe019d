import { readFileSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { planSpec } from '@cairn/hashing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectedLog, makeHarness, spec, type Harness } from './engine-harness.js';
import { SnapshotInUseError } from '../src/index.js';

/**
 * The engine's side of many processes on one store: lease files and step locks in the
 * metadata DB, as another process (live or dead) leaves them. The CLI tests
 * (apps/cli/test/shared-store.test.ts, stress.test.ts) run real processes against each other.
 */
describe('leases and step locks of other processes', () => {
  let h: Harness;
  let db: DatabaseSync;
  beforeAll(async () => {
    h = await makeHarness('overlayfs');
    db = new DatabaseSync(join(h.dir, 'db.sqlite'));
  });
  afterAll(async () => {
    db?.close();
    await h?.cleanup();
  });

  /** pid 1 with its real start time: a live process that is not this one. */
  const init = () => `1.${readFileSync('/proc/1/stat', 'utf8').split(') ')[1]!.split(' ')[19]}`;
  const DEAD = '3999990.1';
  const leases = () => join(h.dir, 'leases');

  it("a live process's lease keeps a snapshot from prune and delete; a dead one's does not", async () => {
    const id = await h.builder.build(spec('(run (shell "echo leased"))'), { log: () => undefined });
    // The lease file of another live process: taken, taken again and given back elsewhere, still held.
    await mkdir(leases(), { recursive: true });
    await writeFile(join(leases(), init()), `+${id}\n+other\n-other\n`);
    expect(await h.builder.prune(Date.now() + 1, 10_000)).not.toContain(id);
    await expect(h.builder.delete(id)).rejects.toBeInstanceOf(SnapshotInUseError);
    expect(await h.store.exists(id)).toBe(true);
    // Given back: free again. Then a dead process's lease counts for nothing.
    await writeFile(join(leases(), init()), `+${id}\n-${id}\n`);
    await writeFile(join(leases(), DEAD), `+${id}\n`);
    expect(await h.builder.prune(Date.now() + 1, 10_000)).toContain(id);
    expect(await h.store.exists(id)).toBe(false);
    // Removed with its dead owner.
    expect(await readdir(leases())).not.toContain(DEAD);
    await rm(join(leases(), init()));
  });

  it('a step locked by a dead process is taken over; one locked by a live process is waited for, then replayed', async () => {
    // The first test's prune took the base image too.
    await h.builder.build(spec(''), { log: () => undefined });
    const stale = spec('(run (shell "echo after-a-crash"))');
    const staleId = (await planned(stale))!;
    db.prepare('INSERT INTO step_locks (id, owner, purpose, taken) VALUES (?, ?, ?, ?)').run(staleId, DEAD, 'build', Date.now());
    const log = new CollectedLog();
    await h.builder.build(stale, { log: log.log });
    expect(log.output).toContain('after-a-crash');
    expect(log.notes.some((n) => n.startsWith('---> saved as'))).toBe(true);

    // Another (live) process holds the lock: this build waits, and when that process has
    // published the step (done here through the store), replays its log as a cache hit.
    const waited = spec('(run (shell "echo never-run-here"))');
    const waitedId = (await planned(waited))!;
    db.prepare('INSERT INTO step_locks (id, owner, purpose, taken) VALUES (?, ?, ?, ?)').run(waitedId, init(), 'build', Date.now());
    const waiting = new CollectedLog();
    const runsBefore = h.sandbox.runs;
    const build = h.builder.build(waited, { log: waiting.log });
    await expect.poll(() => waiting.notes.some((n) => n.startsWith('---> waiting for process 1,'))).toBe(true);
    await h.store.build(h.baseId, waitedId, async (dir) => writeFile(join(dir, 'log'), 'built-by-the-other-one\n'));
    db.prepare('DELETE FROM step_locks WHERE id = ?').run(waitedId);
    await build;
    expect(h.sandbox.runs).toBe(runsBefore);
    expect(waiting.output).toContain('built-by-the-other-one\n');
    expect(waiting.notes.some((n) => n.startsWith(`---> using "${waitedId}" from cache`))).toBe(true);
  });

  /** The ID of a spec's last step, as the engine computes it (the base image is in the store by now). */
  async function planned(s: ReturnType<typeof spec>): Promise<string | undefined> {
    const { env } = JSON.parse((await h.store.metadata(h.baseId))!) as { env: [string, string][] };
    return (await planSpec(s, { imageEnv: env })).steps.at(-1)?.id;
  }
});
