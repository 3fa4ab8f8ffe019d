import { afterAll, describe, expect, it } from 'vitest';
import { CollectedLog, makeHarness, spec, STORE_KINDS, type Harness } from './engine-harness.js';

const JOBS = 100;
const CONCURRENCY = 10;

/**
 * A job: busybox, then four steps drawn from three values each, each appending to a file
 * in a shared cache and writing a file of its own, then a step that checks all four.
 */
function job(values: number[]) {
  const steps = values.map(
    (v, k) => `(run (cache (stress (target /cache))) (shell "echo step${k}=${v} >> /cache/appends; echo ${v} > /step${k}; echo ran-${k}-${v}"))`,
  );
  const check = `(run (shell "test \\"$(cat /step0 /step1 /step2 /step3 | tr -d '\\n')\\" = ${values.join('')} && echo check-ok"))`;
  return { spec: spec(`${steps.join(' ')} ${check}`), values };
}

describe.each(STORE_KINDS)('store stress on %s', (kind) => {
  let h: Harness | undefined;
  afterAll(async () => {
    await h?.cleanup();
  });

  it(
    `runs ${JOBS} jobs, ${CONCURRENCY} at a time, each with the right log`,
    async () => {
      h = await makeHarness(kind);
      const random = seeded(42);
      const jobs = Array.from({ length: JOBS }, () => job(Array.from({ length: 4 }, () => Math.floor(random() * 3))));
      let next = 0;
      const failures: string[] = [];
      const started = Date.now();
      const worker = async () => {
        while (next < jobs.length) {
          const j = jobs[next++]!;
          const log = new CollectedLog();
          await h!.builder.build(j.spec, { log: log.log }).catch((e: Error) => failures.push(`job ${j.values}: ${e.message}`));
          const expected = j.values.map((v, k) => `ran-${k}-${v}`);
          const ran = log.output.split('\n').filter((l) => l.startsWith('ran-'));
          if (JSON.stringify(ran) !== JSON.stringify(expected)) failures.push(`job ${j.values}: log shows ${ran}`);
          if (!log.output.includes('check-ok')) failures.push(`job ${j.values}: check failed:\n${log.output}`);
        }
      };
      // Settle every worker before judging, so no build is still running at cleanup.
      const settled = await Promise.allSettled(Array.from({ length: CONCURRENCY }, worker));
      for (const r of settled) if (r.status === 'rejected') failures.push(String(r.reason));
      const seconds = (Date.now() - started) / 1000;
      console.log(`stress ${kind}: ${JOBS} jobs in ${seconds.toFixed(1)} s = ${(JOBS / seconds).toFixed(1)} jobs/s (${h.sandbox.runs} steps run)`);
      expect(failures).toEqual([]);
      // Shared prefixes ran once: at most 3 + 9 + 27 + 81 distinct append steps plus one check per distinct job.
      expect(h.sandbox.runs).toBeLessThanOrEqual(3 + 9 + 27 + 81 + 81);
    },
    // zfs-fuse takes one command at a time from a process (zfs.ts), ~20 ms each: 100 jobs take ~80 s on a quiet machine.
    kind === 'zfs' ? 300_000 : undefined,
  );
});

/** A small deterministic generator, so that every run builds the same jobs. */
function seeded(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
}
