import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { cliStore, type CliStore } from './cli-process.js';

/**
 * OBuilder's stress test, through the CLI: jobs run as separate `cairn build` processes,
 * CONCURRENCY at a time, on one store, while `cairn df` and `cairn prune` run in a loop
 * beside them. The normal test run takes 20 jobs on overlayfs and btrfs; `npm run
 * bench:stress-cli` takes 100 on btrfs, overlayfs, rsync and xfs and prints jobs/s.
 */
const JOBS = Number(process.env.CAIRN_STRESS_JOBS ?? 20);
const STORES = (process.env.CAIRN_STRESS_STORES ?? 'overlayfs,btrfs').split(',') as ('btrfs' | 'overlayfs' | 'rsync' | 'xfs')[];
const CONCURRENCY = 10;

/**
 * A job: busybox, then four steps drawn from three values each, each appending to a file
 * in a shared cache and writing a file of its own, then a step that checks all four.
 */
function jobOps(values: number[]): string {
  const steps = values.map(
    (v, k) => `(run (cache (stress (target /cache))) (shell "echo step${k}=${v} >> /cache/appends; echo ${v} > /step${k}; echo ran-${k}-${v}"))`,
  );
  const check = `(run (shell "test \\"$(cat /step0 /step1 /step2 /step3 | tr -d '\\n')\\" = ${values.join('')} && echo check-ok"))`;
  return `${steps.join(' ')} ${check}`;
}

describe.each(STORES)('cairn processes under stress on %s', (kind) => {
  let store: CliStore | undefined;
  afterAll(async () => {
    await store?.cleanup();
  });

  it(
    `runs ${JOBS} jobs as ${CONCURRENCY} processes at a time, with df and prune beside them`,
    async () => {
      store = await cliStore(kind);
      const s = store;
      const random = seeded(42);
      const jobs = await Promise.all(
        Array.from({ length: JOBS }, async (_, i) => {
          const values = Array.from({ length: 4 }, () => Math.floor(random() * 3));
          return { values, file: await s.specFile(`job-${i}.spec`, jobOps(values)) };
        }),
      );
      const failures: string[] = [];
      let next = 0;
      let running = true;
      let admin = 0;
      const started = Date.now();
      const worker = async () => {
        while (next < jobs.length) {
          const j = jobs[next++]!;
          const r = await s.cairn(['build', '-f', j.file, s.dir]);
          if (r.status !== 0) failures.push(`job ${j.values}: exit ${r.status}: ${r.stderr}`);
          const expected = j.values.map((v, k) => `ran-${k}-${v}`);
          const ran = r.stdout.split('\n').filter((l) => l.startsWith('ran-'));
          if (JSON.stringify(ran) !== JSON.stringify(expected)) failures.push(`job ${j.values}: log shows ${ran}:\n${r.stdout}`);
          if (!r.stdout.includes('check-ok')) failures.push(`job ${j.values}: check failed:\n${r.stdout}`);
        }
      };
      // Prune takes everything no build stands on, so later jobs rebuild what it took.
      const housekeeping = async () => {
        while (running) {
          for (const args of [
            ['df', '--json'],
            ['prune', '--before', '0s', '--limit', '5'],
          ]) {
            const r = await s.cairn(args);
            admin++;
            if (r.status !== 0) failures.push(`cairn ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
          }
          await sleep(200);
        }
      };
      const beside = housekeeping();
      const settled = await Promise.allSettled(Array.from({ length: CONCURRENCY }, worker));
      running = false;
      await beside;
      for (const r of settled) if (r.status === 'rejected') failures.push(String(r.reason));
      const seconds = (Date.now() - started) / 1000;
      console.log(
        `stress ${kind} (CLI): ${JOBS} jobs in ${seconds.toFixed(1)} s = ${(JOBS / seconds).toFixed(2)} jobs/s, ${CONCURRENCY} processes at a time, ${admin} df/prune runs beside`,
      );
      expect(failures).toEqual([]);
    },
    Math.max(120_000, JOBS * 4_000),
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
