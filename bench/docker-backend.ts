/**
 * The Docker backend against `docker build` of the same Dockerfile, on one private
 * dockerd, in the same run: per-step cost of a cold build of N trivial steps (docker
 * build --no-cache), and a fully cached rebuild (in-process engine vs warm docker build).
 * The cold builds alternate, Cairn then docker build, `--cold-runs` times, and the medians
 * are compared: on a shared machine one cold build of each is mostly a sample of the load.
 *
 *   npm run bench:docker   (= npx tsx bench/docker-backend.ts [--steps 20] [--runs 5] [--cold-runs 3])
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Builder } from '@cairn/builder';
import { OciLayoutFetcher } from '@cairn/fetcher';
import { DockerSandbox } from '@cairn/sandbox';
import { dockerfileOfSpec, parseSpec } from '@cairn/spec';
import { DockerStore } from '@cairn/store';
import { startDockerd } from '../test/support/dockerd.js';
import { busyboxImage } from '../test/support/images.js';
import { makeBusyboxRootfs } from '../test/support/rootfs.js';
import { BASE, median, ms } from './setup.js';

const { values } = parseArgs({
  options: { steps: { type: 'string', default: '20' }, runs: { type: 'string', default: '5' }, 'cold-runs': { type: 'string', default: '3' } },
});
const N = Number(values.steps);
const RUNS = Number(values.runs);
const COLD_RUNS = Number(values['cold-runs']);

const dir = await mkdtemp(join(tmpdir(), 'cairn-bench-docker-'));
const dockerd = await startDockerd();
try {
  const images = join(dir, 'images');
  await busyboxImage(images, BASE);
  const rootfs = join(dir, 'busybox');
  await mkdir(rootfs);
  await makeBusyboxRootfs(rootfs);
  await dockerd.importRootfs(rootfs, BASE, ['ENV PATH=/bin']);
  const builder = await Builder.open({
    store: new DockerStore(join(dir, 'store'), { socketPath: dockerd.socketPath }),
    sandbox: new DockerSandbox({ socketPath: dockerd.socketPath }),
    fetcher: new OciLayoutFetcher(images),
    dbPath: join(dir, 'db.sqlite'),
    secretKey: 'bench',
  });
  const text = (tag: string) =>
    `((from ${BASE}) (shell /bin/sh -c) ${Array.from({ length: N }, (_, i) => `(run (shell "echo ${tag} ${i} > /f${i}"))`).join(' ')})`;
  const ctx = join(dir, 'ctx');
  await mkdir(ctx);
  const docker = (args: string[]) => {
    const t = performance.now();
    const r = spawnSync('/usr/bin/docker', ['-H', `unix://${dockerd.socketPath}`, ...args], { env: { ...process.env, DOCKER_BUILDKIT: '1' } });
    if (r.status !== 0) throw new Error(String(r.stderr));
    return performance.now() - t;
  };

  // Cold: fresh commands each time (a new tag), so nothing comes from cache.
  await builder.build(parseSpec(`((from ${BASE}))`), { log: () => undefined });
  const cairnCold: number[] = [];
  const dockerCold: number[] = [];
  for (let i = 0; i < COLD_RUNS; i++) {
    const t = performance.now();
    await builder.build(parseSpec(text(`cairn-cold-${i}`)), { log: () => undefined });
    cairnCold.push((performance.now() - t) / N);
    await writeFile(join(ctx, 'Dockerfile'), dockerfileOfSpec(parseSpec(text(`docker-cold-${i}`))));
    dockerCold.push(docker(['build', '--no-cache', '--network', 'none', '-q', '-t', 'bench-cold', ctx]) / N);
  }
  const [cc, dc] = [median(cairnCold), median(dockerCold)];
  console.log(`cold, per step (median of ${COLD_RUNS}): cairn docker backend ${ms(cc)}, docker build --no-cache ${ms(dc)}, ratio ${(cc / dc).toFixed(2)}`);
  console.log(`  each run: cairn ${cairnCold.map(ms).join(', ')}; docker build ${dockerCold.map(ms).join(', ')}`);

  // Cached: the same spec again, warm.
  const warm = parseSpec(text('warm'));
  await builder.build(warm, { log: () => undefined });
  await writeFile(join(ctx, 'Dockerfile'), dockerfileOfSpec(warm));
  docker(['build', '--network', 'none', '-q', '-t', 'bench-warm', ctx]);
  const cairnTimes: number[] = [];
  const dockerTimes: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await builder.build(warm, { log: () => undefined });
    cairnTimes.push(performance.now() - t);
    dockerTimes.push(docker(['build', '--network', 'none', '-q', '-t', 'bench-warm', ctx]));
  }
  const c = median(cairnTimes);
  const d = median(dockerTimes);
  console.log(`cached rebuild, ${N} steps: cairn docker backend (in-process) ${ms(c)}, docker build ${ms(d)}, ratio ${(c / d).toFixed(2)}`);
  builder.close();
} finally {
  await dockerd.stop();
  await rm(dir, { recursive: true, force: true });
}
