import { Option, type Command } from 'commander';
import type { Spec } from '@cairn/spec';
import { InterruptedError } from '../cli-error.js';
import type { EngineFlags } from '../engine-config.js';
import { openContextCache } from '../context-cache.js';
import { addImageFlags, checkImageFlags, describeExport, exportImage, type ImageFlags } from '../image-export.js';
import { addLimitFlags, stepBounds, type LimitFlags } from '../limit-flags.js';
import { collect, displayName, type Io } from '../io.js';
import { buildView, type ProgressMode } from '../progress/index.js';
import { readSpec } from '../read-spec.js';
import { readSecretFiles } from '../secret-key.js';

interface BuildOpts extends EngineFlags, LimitFlags, ImageFlags {
  file: string;
  secret: string[];
  json?: boolean;
  progress: ProgressMode;
  quiet?: boolean;
  raw?: boolean;
}

export function registerBuild(program: Command, io: Io): void {
  const build = program
    .command('build')
    .summary('build a spec, step by step, from cache where possible')
    .description(
      `Runs every step of the spec in a sandbox and snapshots the result of each, so that
an unchanged step is never run again. Step output is streamed as it is produced, with a
[n/N] progress heading per snapshot step; the final snapshot ID is printed at the end.`,
    )
    .requiredOption('-f, --file <spec>', 'the spec file (- for stdin)')
    .argument('[context]', 'build context directory for (copy ...) steps', '.')
    .option(
      '--store <kind:path>',
      'btrfs:/path, overlayfs:/path, rsync:/path, rsync-hardlink:/path, xfs:/path, docker:/path or zfs:POOL (default: CAIRN_STORE or the machine config)',
    )
    .option(
      '--fetcher <spec>',
      'where (from IMAGE) comes from: oci:/layout, registry:http://host:port or docker (default: CAIRN_FETCHER or the machine config)',
    )
    .option('--sandbox <kind>', 'where steps run: runc, crun, docker, jail (FreeBSD) or macos (default: CAIRN_SANDBOX or the machine config, else runc)')
    .addOption(new Option('--runtime <runtime>', 'OCI runtime of the Linux sandbox (same as --sandbox runc|crun)').choices(['runc', 'crun']))
    .option('--fast-sync', 'make fsync and friends no-ops inside steps (results are published atomically anyway)')
    .addOption(
      new Option(
        '--host-network <mode>',
        "what a (network host) step gets: isolated, a network namespace of its own that reaches what this machine reaches except its loopback; shared, this machine's, as in OBuilder (default: CAIRN_HOST_NETWORK or the machine config, else isolated)",
      ).choices(['isolated', 'shared']),
    )
    .addOption(
      new Option(
        '--seccomp <mode>',
        "default: steps may not make the system calls Docker's default profile refuses (keyrings, mounts, new namespaces, modules...); unconfined: no filter, for trusted builds that need one (default: CAIRN_SECCOMP or the machine config, else default)",
      ).choices(['default', 'unconfined']),
    )
    .addOption(
      new Option(
        '--userns <mode>',
        "host: a step's root is this machine's root, less capabilities; remap: each step in a user namespace of its own, its root being uid 100000 here (runc and crun; default: CAIRN_USERNS or the machine config, else host)",
      ).choices(['host', 'remap']),
    )
    .option('--secret <ID:FILE>', 'mount FILE read-only for (secrets (ID ...)) (repeatable); never logged or stored', collect, []);
  addLimitFlags(addImageFlags(build))
    .option('--json', 'log to stderr; print {"id", "durationMs", "steps": [...]} on stdout')
    .addOption(
      new Option(
        '--progress <mode>',
        'how to show the build: tty is a live view of the running steps, plain a log of every line, json one event per line; auto is tty on a terminal, else plain',
      )
        .choices(['auto', 'tty', 'plain', 'json'])
        .default('auto'),
    )
    .option('-q, --quiet', 'print only the result ID')
    .option('--raw', "pass step output's terminal escape sequences through (by default only colours are kept)")
    .addHelpText(
      'after',
      `
Exit status: 0 built; 1 the spec is invalid or a step failed (the message names the step);
2 usage error; 130 interrupted.

Examples:
  cairn build -f examples/hello.spec examples/hello
  cairn build -f build.spec . --store btrfs:/var/lib/cairn/btrfs --secret npmrc:$HOME/.npmrc
  cairn build -f build.spec . --memory 4g --pids 4096 --cpus 2 --disk 10g --step-timeout 30m
  cairn build -f build.spec . --json | jq -r .id
  cairn build -f build.spec . --progress json | jq -c 'select(.event == "step-finished")'
  id=$(cairn build -q -f build.spec .)
  cairn build -f app.spec . --image 127.0.0.1:5000/app:1 --push --load --entrypoint '["/usr/bin/node", "main.js"]'
  cairn import -f Dockerfile --image-config image.json > app.spec && cairn build -f app.spec . --image app:1 --oci-layout out --image-config image.json`,
    )
    .action(async (context: string, opts: BuildOpts, command: Command) => {
      const { spec } = await readSpec(io, opts.file);
      checkImageFlags(opts);
      const secrets = await readSecretFiles(opts.secret);
      // The engine loads only for commands that build: `cairn --help` stays quick.
      const limits = await stepBounds(opts);
      const { openBuilder, CancelledError } = await import('../engine-config.js');
      const builder = await openBuilder(opts);
      const view = buildView(io, snapshotSteps(spec), {
        mode: opts.quiet ? 'quiet' : opts.progress,
        toStderr: opts.json ?? false,
        noColor: command.optsWithGlobals().color === false,
        raw: opts.raw ?? false,
      });
      const controller = new AbortController();
      const interrupt = () => controller.abort();
      process.once('SIGINT', interrupt);
      process.once('SIGTERM', interrupt);
      const started = Date.now();
      const contextDigests = await openContextCache(context);
      try {
        const id = await builder.build(spec, { contextDir: context, contextDigests, secrets, log: view.log, signal: controller.signal, ...limits });
        const image = await exportImage(builder, spec, id, opts);
        const durationMs = Date.now() - started;
        view.succeeded(id, durationMs);
        const steps = view.steps.map((s) => ({ op: s.op, id: s.id, cached: s.cached, ms: s.ms }));
        if (opts.json) io.out(`${JSON.stringify({ id, durationMs, steps, ...(image ? { image } : {}) })}\n`);
        else if (opts.quiet) io.out(`${id}\n`);
        else if (image) io.out(describeExport(image));
      } catch (e) {
        view.failed(e instanceof Error ? e.message : String(e), Date.now() - started);
        if (e instanceof CancelledError) throw new InterruptedError(`build of ${displayName(opts.file)} interrupted`);
        throw e;
      } finally {
        process.off('SIGINT', interrupt);
        process.off('SIGTERM', interrupt);
        await contextDigests.save();
        builder.close();
      }
    });
}

/** Base images plus run and copy ops, over the spec and its child builds. */
function snapshotSteps(spec: Spec): number {
  return 1 + spec.ops.filter((op) => op.op === 'run' || op.op === 'copy').length + spec.childBuilds.reduce((n, c) => n + snapshotSteps(c.spec), 0);
}
