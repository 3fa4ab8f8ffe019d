/**
 * Fully cached rebuild of a 20-step spec through the `cairn` CLI (a fresh process each
 * time), against `docker build` of the equivalent Dockerfile on a local dockerd with
 * BuildKit, both warm, in the same run. Target: ratio <= 1.0. Also the in-process cost
 * of a cache hit: a 100-step fully cached build, target <= 0.3 s (<= 2 ms a hit).
 *
 *   npx tsx bench/cached-rebuild.ts [--runs 5]
 */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { dockerfileOfSpec, parseSpec } from '@cairn/spec';
import { startDockerd } from '../test/support/dockerd.js';
import { makeBusyboxRootfs } from '../test/support/rootfs.js';
import { BASE, benchEnv, median, ms } from './setup.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const RUNS = Number(values.runs);
const CLI = join(import.meta.dirname, '../apps/cli/bin/cairn.js');

const specText = (n: number) =>
  `((from ${BASE}) (shell /bin/sh -c) ${Array.from({ length: n }, (_, i) => `(run (shell "echo step ${i} > /step${i}"))`).join(' ')})`;

const env = await benchEnv('btrfs');
const dockerd = await startDockerd();
try {
  // In-process: 100 cached steps.
  const hundred = parseSpec(specText(100));
  await env.builder.build(hundred, { log: () => undefined });
  const inProcess: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await env.builder.build(hundred, { log: () => undefined });
    inProcess.push(performance.now() - t);
  }
  const hundredMs = median(inProcess);
  console.log(`in-process, 100 cached steps: ${ms(hundredMs)} (${(hundredMs / 101).toFixed(2)} ms per hit; target <= 300 ms, <= 2 ms/hit)`);
  env.builder.close();

  // Through the CLI vs docker build, 20 steps.
  const dir = join(env.dir, 'ctx');
  await mkdir(dir, { recursive: true });
  const spec20 = join(dir, 'bench.spec');
  await writeFile(spec20, specText(20));
  await writeFile(join(dir, 'Dockerfile'), dockerfileOfSpec(parseSpec(specText(20))));
  const cliEnv = {
    ...process.env,
    CAIRN_STORE: `btrfs:${env.store.root}`,
    CAIRN_FETCHER: `oci:${env.images}`,
    CAIRN_CONFIG: join(env.dir, 'none.json'),
    CAIRN_SECRET_KEY: 'bench',
  };
  // The same busybox filesystem as the Cairn image, imported into dockerd.
  const rootfs = join(env.dir, 'busybox-rootfs');
  await mkdir(rootfs);
  await makeBusyboxRootfs(rootfs);
  await dockerd.importRootfs(rootfs, BASE, ['ENV PATH=/bin']);
  const docker = (args: string[]) =>
    spawnSync('/usr/bin/docker', ['-H', `unix://${dockerd.socketPath}`, ...args], { env: { ...process.env, DOCKER_BUILDKIT: '1' } });

  const time = (fn: () => { status: number | null; stderr: Buffer | string }) => {
    const t = performance.now();
    const r = fn();
    if (r.status !== 0) throw new Error(String(r.stderr));
    return performance.now() - t;
  };
  const cairnBuild = () => spawnSync('node', [CLI, 'build', '-f', spec20, dir], { env: cliEnv });
  // No bridge on this daemon (--bridge=none): RUN steps use no network, like Cairn's.
  const dockerBuild = () => docker(['build', '--network', 'none', '-q', '-t', 'bench', dir]);
  time(cairnBuild);
  time(dockerBuild);
  const cairnTimes: number[] = [];
  const dockerTimes: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    cairnTimes.push(time(cairnBuild));
    dockerTimes.push(time(dockerBuild));
  }
  const c = median(cairnTimes);
  const d = median(dockerTimes);
  console.log(`20 cached steps: cairn build (new process) ${ms(c)}, docker build (BuildKit) ${ms(d)}, ratio ${(c / d).toFixed(2)} (target <= 1.0)`);

  // Start-up alone: `cairn --version` against an empty node, alternated so both see the same machine.
  const nodeTimes: number[] = [];
  const versionTimes: number[] = [];
  for (let i = 0; i < RUNS * 4; i++) {
    nodeTimes.push(time(() => spawnSync('node', ['-e', '0'])));
    versionTimes.push(time(() => spawnSync('node', [CLI, '--version'])));
  }
  const n = median(nodeTimes);
  const v = median(versionTimes);
  console.log(`start-up: cairn --version ${ms(v)}, node -e 0 ${ms(n)}, difference ${ms(v - n)} (target <= 10 ms); Node.js ${process.version}`);
} finally {
  await dockerd.stop();
  await env.cleanup();
}
