/**
 * A big build context: 55,000 small files (55 folders x 1,000), spec
 * `(copy (src src) (dst /src)) (run ...)`. `cairn plan` (a fresh process through the built
 * CLI, with its context hash cache) and `cairn build`, against `docker build` of the
 * Dockerfile `cairn dockerfile` prints, on a private dockerd with BuildKit, in the same
 * run: cold (empty caches), unchanged, one file changed, one file added. Targets: plan
 * unchanged <= 0.3 s, one file changed <= 0.5 s; cold <= 1.0x docker build.
 *
 *   npx tsx bench/context-hashing.ts [--runs 3] [--no-build] [--no-docker] [--cli PATH]...
 *
 * --cli (repeatable) times `cairn plan` of each of several builds of the CLI in the same
 * run, each with its own context cache (the first also for build and docker's columns):
 * a copy of apps/cli (bin/, dist/bundle/ and package.json) from before a change, say.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDockerd, type RunningDockerd } from '../test/support/dockerd.js';
import { makeBusyboxRootfs } from '../test/support/rootfs.js';
import { BASE, benchEnv, median, ms } from './setup.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'no-build': { type: 'boolean' },
    'no-docker': { type: 'boolean' },
    cli: { type: 'string', multiple: true },
  },
});
const RUNS = Number(values.runs);
const CLIS = values.cli?.length ? values.cli : [join(import.meta.dirname, '../apps/cli/bin/cairn.js')];
const CLI = CLIS[0]!;
const FOLDERS = 55;
const PER_FOLDER = 1000;

interface Timed {
  readonly ms: number;
  /** User plus system CPU of the process, which the machine's other load does not inflate. */
  readonly cpuMs?: number;
}

/** Runs a command to its end, failing the bench if it fails. */
function timed(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Timed {
  const t = performance.now();
  // GNU time's last stderr line: user and system seconds.
  const r = spawnSync('/usr/bin/time', ['-f', 'cpu %U %S', cmd, ...args], { env, maxBuffer: 256 << 20 });
  const elapsed = performance.now() - t;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${String(r.stderr).slice(-4000)}`);
  const cpu = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(String(r.stderr));
  return { ms: elapsed, ...(cpu ? { cpuMs: (Number(cpu[1]) + Number(cpu[2])) * 1000 } : {}) };
}

const env = values['no-build'] ? undefined : await benchEnv('btrfs');
const dir = env?.dir ?? (await mkdtemp('/tmp/cairn-bench-context-'));
let dockerd: RunningDockerd | undefined;
try {
  const ctx = join(dir, 'ctx');
  for (let d = 0; d < FOLDERS; d++) {
    await mkdir(join(ctx, 'src', `d${d}`), { recursive: true });
    for (let f = 0; f < PER_FOLDER; f++) await writeFile(join(ctx, 'src', `d${d}`, `f${f}.txt`), `folder ${d} file ${f}\n`);
  }
  const spec = join(dir, 'build.spec');
  await writeFile(spec, `((from ${BASE}) (shell /bin/sh -c) (copy (src src) (dst /src)) (run (shell "ls /src | wc -l")))`);
  const dockerfile = spawnSync('node', [CLI, 'dockerfile', '-f', spec], { encoding: 'utf8' });
  if (dockerfile.status !== 0) throw new Error(dockerfile.stderr);
  await writeFile(join(ctx, 'Dockerfile'), dockerfile.stdout);
  // A user's files are older than the racy window; so are these once it has passed.
  await new Promise((resolve) => setTimeout(resolve, 2100));

  const cacheDirs = CLIS.map((_, i) => join(dir, `context-cache-${i}`));
  const cacheDir = cacheDirs[0]!;
  const cliEnv = {
    ...process.env,
    CAIRN_CONTEXT_CACHE: cacheDir,
    ...(env
      ? { CAIRN_STORE: `btrfs:${env.store.root}`, CAIRN_FETCHER: `oci:${env.images}`, CAIRN_CONFIG: join(env.dir, 'none.json'), CAIRN_SECRET_KEY: 'bench' }
      : {}),
  };
  const plan = (i: number) => timed('node', [CLIS[i]!, 'plan', '-f', spec, ctx], { ...cliEnv, CAIRN_CONTEXT_CACHE: cacheDirs[i]! });
  const build = () => timed('node', [CLI, 'build', '-q', '-f', spec, ctx], cliEnv);

  let docker: (() => Timed) | undefined;
  let dockerPrune: (() => void) | undefined;
  if (!values['no-docker']) {
    dockerd = await startDockerd();
    const rootfs = join(dir, 'busybox-rootfs');
    await mkdir(rootfs);
    await makeBusyboxRootfs(rootfs);
    await dockerd.importRootfs(rootfs, BASE, ['ENV PATH=/bin']);
    const dockerEnv = { ...process.env, DOCKER_BUILDKIT: '1' };
    const host = `unix://${dockerd.socketPath}`;
    // No bridge on this daemon (--bridge=none): RUN steps use no network, like Cairn's.
    docker = () => timed('/usr/bin/docker', ['-H', host, 'build', '--network', 'none', '-q', '-t', 'bench', ctx], dockerEnv);
    dockerPrune = () => void spawnSync('/usr/bin/docker', ['-H', host, 'builder', 'prune', '-af'], { env: dockerEnv });
  }

  type Row = { phase: string; plan: Timed[]; plans: Timed[][]; build: Timed[]; docker: Timed[] };
  const rows: Row[] = [];
  const measure =
    (phase: string, runs: number, before: (i: number) => Promise<void>, cold = false) =>
    async () => {
      const row: Row = { phase, plan: [], plans: CLIS.map(() => []), build: [], docker: [] };
      for (let i = 0; i < runs; i++) {
        await before(i);
        // Each CLI in turn, the later ones first so that none always runs right after the change.
        for (let c = CLIS.length - 1; c >= 0; c--) {
          if (cold) await rm(cacheDirs[c]!, { recursive: true, force: true });
          row.plans[c]!.push(plan(c));
        }
        row.plan = row.plans[0]!;
        if (env) {
          // The cold build must not find the plan's digests; every other build may.
          if (cold) await rm(cacheDir, { recursive: true, force: true });
          row.build.push(build());
        }
        if (docker) {
          if (cold) dockerPrune!();
          row.docker.push(docker());
        }
      }
      rows.push(row);
    };
  const noop = async () => undefined;
  // Cold once: the build's snapshot store cannot be emptied between runs.
  await measure('cold', 1, noop, true)();
  await measure('unchanged', RUNS, noop)();
  await measure('one file changed', RUNS, async (i) => {
    // Same size, new content: the mtime moves and the file is read again.
    await writeFile(join(ctx, 'src', 'd7', `f${i}.txt`), `FOLDER 7 FILE ${i}\n`.slice(0, `folder 7 file ${i}\n`.length));
  })();
  await measure('one file added', RUNS, async (i) => {
    await writeFile(join(ctx, 'src', 'd9', `added${i}.txt`), `added ${i}\n`);
  })();

  const fmt = (ts: Timed[]) => {
    if (ts.length === 0) return '-';
    const cpu = ts.every((t) => t.cpuMs !== undefined) ? `, cpu ${ms(median(ts.map((t) => t.cpuMs!)))}` : '';
    return `${ms(median(ts.map((t) => t.ms)))}${cpu}`;
  };
  const ratio = (a: Timed[], b: Timed[]) => (a.length && b.length ? `${(median(a.map((t) => t.ms)) / median(b.map((t) => t.ms))).toFixed(2)}x` : '-');
  console.log(`context: ${FOLDERS * PER_FOLDER} files; runs per phase: cold 1, others ${RUNS} (medians); Node.js ${process.version}`);
  if (CLIS.length > 1) {
    console.log(`| phase | ${CLIS.map((c) => `plan: ${c}`).join(' | ')} |`);
    console.log(`| --- |${CLIS.map(() => ' --- |').join('')}`);
    for (const r of rows) console.log(`| ${r.phase} | ${r.plans.map(fmt).join(' | ')} |`);
  }
  console.log('| phase | cairn plan | cairn build | docker build | plan / docker | build / docker |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows)
    console.log(`| ${r.phase} | ${fmt(r.plan)} | ${fmt(r.build)} | ${fmt(r.docker)} | ${ratio(r.plan, r.docker)} | ${ratio(r.build, r.docker)} |`);
  const unchanged = median(rows[1]!.plan.map((t) => t.ms));
  const changed = median(rows[2]!.plan.map((t) => t.ms));
  console.log(`targets: plan unchanged ${ms(unchanged)} (<= 300 ms), one file changed ${ms(changed)} (<= 500 ms)`);
} finally {
  await dockerd?.stop();
  if (env) await env.cleanup();
  else await rm(dir, { recursive: true, force: true });
}
