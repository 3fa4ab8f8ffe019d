/**
 * What `(network host)` costs per step (issue 19): RuncSandbox.run of `true` in a busybox
 * root filesystem, interleaved, for a step without network, a `(network host)` step with
 * hostNetwork "shared" (the host's namespace) and one with "isolated" (its own namespace
 * behind slirp4netns, the default). Steps without network take the code path they always
 * did; the first row is there to show it stays where it was.
 *
 *   npx tsx bench/step-network.ts [--runs 40] [--runtimes runc,crun]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RuncSandbox, type RunConfig } from '@cairn/sandbox';
import { makeBusyboxRootfs } from '../test/support/rootfs.js';
import { median, ms } from './setup.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '40' }, runtimes: { type: 'string', default: 'runc,crun' } } });
const N = Number(values.runs);

const dir = await mkdtemp(join(tmpdir(), 'cairn-bench-network-'));
try {
  const rootfs = join(dir, 'rootfs');
  await makeBusyboxRootfs(rootfs);
  const step = (network: string[]): RunConfig => ({
    argv: ['/bin/sh', '-c', 'true'],
    cwd: '/',
    env: [['PATH', '/bin']],
    user: { kind: 'unix', uid: 0, gid: 0 },
    hostname: 'builder',
    network,
    mounts: [],
    secrets: [],
  });
  for (const runtime of values.runtimes!.split(',') as ('runc' | 'crun')[]) {
    const cases = [
      { name: 'no network', sandbox: new RuncSandbox({ runtime, stateDir: join(dir, `${runtime}-1`) }), config: step([]) },
      {
        name: '(network host), shared',
        sandbox: new RuncSandbox({ runtime, stateDir: join(dir, `${runtime}-2`), hostNetwork: 'shared' }),
        config: step(['host']),
      },
      { name: '(network host), isolated', sandbox: new RuncSandbox({ runtime, stateDir: join(dir, `${runtime}-3`) }), config: step(['host']) },
    ];
    const times = cases.map(() => [] as number[]);
    for (const c of cases) {
      await c.sandbox.init();
      for (let i = 0; i < 3; i++) await c.sandbox.run(c.config, rootfs, { onOutput: () => undefined });
    }
    for (let i = 0; i < N; i++) {
      for (const [k, c] of cases.entries()) {
        const start = performance.now();
        await c.sandbox.run(c.config, rootfs, { onOutput: () => undefined });
        times[k]!.push(performance.now() - start);
      }
    }
    for (const [k, c] of cases.entries()) console.log(`${runtime.padEnd(5)} ${c.name.padEnd(26)} median ${ms(median(times[k]!))}/step`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
