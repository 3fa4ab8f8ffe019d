/**
 * Issue 18: a step that forks or allocates up to its limits leaves its host responsive.
 * While it runs, the host starts a small process again and again; each must come back
 * within a bound that only a hang would pass (the machine is shared and loaded: this
 * is not a performance claim), and the step must fail on its limit.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { LimitReachedError } from '../src/index.js';
import { RUNTIMES, scratch } from './harness.js';

/** A hang, not a slow moment of a loaded 2-core machine. */
const HANG_MS = 5_000;

/** How long the host takes to start and reap `true`. */
function hostLatency(): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('true', { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', () => resolve(Date.now() - started));
  });
}

/** Samples hostLatency until `done` settles; every sample and the count taken. */
async function sampleWhile(done: Promise<unknown>): Promise<number[]> {
  let finished = false;
  void done.finally(() => (finished = true));
  const samples: number[] = [];
  while (!finished) {
    samples.push(await hostLatency());
    await new Promise((r) => setTimeout(r, 50));
  }
  return samples;
}

const HOGS = {
  // Every process it may have, each forking as fast as it can. `exec`: the step's own
  // shell forks no more once the bomb is lit, so it cannot die of a refused fork before
  // the 200 ms poll has read the counter (the runtime's cgroup, which holds it, goes
  // with the container).
  'a fork bomb': { limits: { pids: 256 }, script: 'bomb() { bomb | bomb & }; bomb; exec sleep 60', reason: 'pids limit 256 reached' },
  // Four busy loops on half a CPU, and a shell variable past its memory.
  'busy loops allocating past their memory': {
    limits: { memoryBytes: 128 * 1024 * 1024, cpus: 0.5 },
    script: 'for i in 1 2 3 4; do while :; do :; done & done; sleep 1; x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo ${#x}',
    reason: 'killed: out of memory (limit 128 MiB)',
  },
} as const;

describe.each(RUNTIMES)('%s: the host while a step runs into its limits', (runtime) => {
  it.each(Object.keys(HOGS) as (keyof typeof HOGS)[])('answers within a hang bound beside %s', async (hog) => {
    const { limits, script, reason } = HOGS[hog];
    const s = await scratch(runtime, { limits });
    const step = s.attempt(script);
    const samples = await sampleWhile(step);
    const { error } = await step;
    expect(error).toBeInstanceOf(LimitReachedError);
    expect((error as Error).message).toBe(reason);
    // The host was asked while the step ran, and never hung.
    expect(samples.length).toBeGreaterThan(2);
    expect(Math.max(...samples)).toBeLessThan(HANG_MS);
    expect(await s.containers()).toEqual([]);
  });
});
