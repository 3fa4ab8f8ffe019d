/**
 * Per-step cost of a cold build of N trivial steps, against the floor measured in the
 * same run: the store's own snapshot cycle plus a raw `runc run` of the same command,
 * with no engine in between. Target: at most 1.25x the floor.
 *
 *   npx tsx bench/step-cost.ts [--steps 30] [--stores btrfs,overlayfs,rsync,xfs]
 */
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { baseId, sha256Hex } from '@cairn/hashing';
import { ociConfig } from '@cairn/sandbox';
import { parseSpec } from '@cairn/spec';
import { BASE, benchEnv, ms } from './setup.js';

const { values } = parseArgs({ options: { steps: { type: 'string', default: '30' }, stores: { type: 'string', default: 'btrfs,overlayfs,rsync,xfs' } } });
const N = Number(values.steps);

for (const kind of values.stores!.split(',')) {
  const env = await benchEnv(kind);
  try {
    // Warm: the base image is fetched once, outside the timings.
    await env.builder.build(parseSpec(`((from ${BASE}))`), { log: () => undefined });

    // Floor: snapshot cycle + raw runc run, chained like a build.
    const bundle = join(env.dir, 'floor-bundle');
    await mkdir(bundle, { recursive: true });
    let parent = baseId(BASE);
    const floorStart = performance.now();
    for (let i = 0; i < N; i++) {
      const id = sha256Hex(`floor ${i}`);
      await env.store.build(parent, id, async (dir) => {
        const config = ociConfig(
          {
            argv: ['/bin/sh', '-c', `echo floor ${i}`],
            cwd: '/',
            env: [['PATH', '/bin']],
            user: { kind: 'unix', uid: 0, gid: 0 },
            hostname: 'builder',
            network: [],
            mounts: [],
            secrets: [],
          },
          { rootfs: join(dir, 'rootfs'), hostsFile: '/etc/hosts', secretFiles: [], fastSync: false, arch: process.arch },
        );
        await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
        await execa('runc', ['run', '--bundle', bundle, `bench-${randomUUID().slice(0, 8)}`]);
      });
      parent = id;
    }
    const floor = (performance.now() - floorStart) / N;

    const ops = Array.from({ length: N }, (_, i) => `(run (shell "echo cairn ${i}"))`).join(' ');
    const cairnStart = performance.now();
    await env.builder.build(parseSpec(`((from ${BASE}) (shell /bin/sh -c) ${ops})`), { log: () => undefined });
    const cairn = (performance.now() - cairnStart) / N;
    console.log(`${kind.padEnd(10)} floor ${ms(floor)}/step  cairn ${ms(cairn)}/step  ratio ${(cairn / floor).toFixed(2)}x (target <= 1.25x)`);
  } finally {
    await env.cleanup();
  }
}
