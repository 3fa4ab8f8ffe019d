/**
 * What the isolation of issue 18 costs per step: RuncSandbox.run of a step in a busybox
 * root filesystem, interleaved, without the seccomp filter (the previous release's
 * sandbox, the baseline), with the default filter (now the default), and with the filter
 * and limits (memory, pids, CPU: a cgroup of the step's own, read while it runs). Two
 * steps: `true`, where the fixed cost shows, and a shell loop of 2000 forks, where a
 * per-system-call filter would show.
 *
 *   npm run bench:step-isolation -- [--runs 30] [--runtimes runc,crun]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RuncSandbox, type RunConfig } from '@cairn/sandbox';
import { makeBusyboxRootfs } from '../test/support/rootfs.js';
import { median, ms } from './setup.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '30' }, runtimes: { type: 'string', default: 'runc,crun' } } });
const N = Number(values.runs);

const dir = await mkdtemp(join(tmpdir(), 'cairn-bench-isolation-'));
try {
  const rootfs = join(dir, 'rootfs');
  await makeBusyboxRootfs(rootfs);
  const step = (script: string): RunConfig => ({
    argv: ['/bin/sh', '-c', script],
    cwd: '/',
    env: [['PATH', '/bin']],
    user: { kind: 'unix', uid: 0, gid: 0 },
    hostname: 'builder',
    network: [],
    mounts: [],
    secrets: [],
  });
  const steps = [
    { name: 'true', config: step('true') },
    { name: '2000 forks', config: step('i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done') },
  ];
  for (const runtime of values.runtimes!.split(',') as ('runc' | 'crun')[]) {
    const sandbox = (n: number, options: Partial<ConstructorParameters<typeof RuncSandbox>[0]>) =>
      new RuncSandbox({ runtime, stateDir: join(dir, `${runtime}-${n}`), ...options });
    const cases = [
      { name: 'unconfined (baseline)', sandbox: sandbox(1, { seccomp: 'unconfined' }) },
      { name: 'default seccomp', sandbox: sandbox(2, {}) },
      { name: 'seccomp + limits', sandbox: sandbox(3, { limits: { memoryBytes: 1024 ** 3, pids: 4096, cpus: 2 } }) },
    ];
    for (const s of steps) {
      const times = cases.map(() => [] as number[]);
      for (const c of cases) {
        await c.sandbox.init();
        for (let i = 0; i < 3; i++) await c.sandbox.run(s.config, rootfs, { onOutput: () => undefined });
      }
      for (let i = 0; i < N; i++) {
        for (const [k, c] of cases.entries()) {
          const start = performance.now();
          await c.sandbox.run(s.config, rootfs, { onOutput: () => undefined });
          times[k]!.push(performance.now() - start);
        }
      }
      const base = median(times[0]!);
      for (const [k, c] of cases.entries()) {
        const m = median(times[k]!);
        console.log(`${runtime.padEnd(5)} ${s.name.padEnd(11)} ${c.name.padEnd(22)} median ${ms(m)}/step  x${(m / base).toFixed(2)}`);
      }
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
