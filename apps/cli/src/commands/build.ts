import { Option, type Command } from 'commander';
import type { Spec } from '@cairn/spec';
import { EXIT, UserError } from '../cli-error.js';
import { collect, displayName, type Io } from '../io.js';
import { buildView, type ProgressMode } from '../progress/index.js';
import { readSpec } from '../read-spec.js';
import { readSecretFiles } from '../secret-key.js';

interface BuildOpts {
  file: string;
  store?: string;
  fetcher?: string;
  sandbox?: string;
  runtime?: string;
  fastSync?: boolean;
  secret: string[];
  json?: boolean;
  progress: ProgressMode;
  quiet?: boolean;
  raw?: boolean;
}

export function registerBuild(program: Command, io: Io, setExit: (code: number) => void): void {
  program
    .command('build')
    .summary('build a spec, step by step, from cache where possible')
    .description(`Runs every step of the spec in a sandbox and snapshots the result of each, so that
an unchanged step is never run again. Step output is streamed as it is produced, with a
[n/N] progress heading per snapshot step; the final snapshot ID is printed at the end.`)
    .requiredOption('-f, --file <spec>', 'the spec file (- for stdin)')
    .argument('[context]', 'build context directory for (copy ...) steps', '.')
    .option('--store <kind:path>', 'btrfs:/path, overlayfs:/path, rsync:/path, rsync-hardlink:/path, xfs:/path, docker:/path or zfs:POOL (default: CAIRN_STORE or the machine config)')
    .option('--fetcher <spec>', 'where (from IMAGE) comes from: oci:/layout, registry:http://host:port or docker (default: CAIRN_FETCHER or the machine config)')
    .option('--sandbox <kind>', 'where steps run: runc, crun, docker, jail (FreeBSD) or macos (default: CAIRN_SANDBOX or the machine config, else runc)')
    .addOption(new Option('--runtime <runtime>', 'OCI runtime of the Linux sandbox (same as --sandbox runc|crun)').choices(['runc', 'crun']))
    .option('--fast-sync', 'make fsync and friends no-ops inside steps (results are published atomically anyway)')
    .option('--secret <ID:FILE>', 'mount FILE read-only for (secrets (ID ...)) (repeatable); never logged or stored', collect, [])
    .option('--json', 'log to stderr; print {"id", "durationMs", "steps": [...]} on stdout')
    .addOption(new Option('--progress <mode>', 'how to show the build: tty is a live view of the running steps, plain a log of every line, json one event per line; auto is tty on a terminal, else plain').choices(['auto', 'tty', 'plain', 'json']).default('auto'))
    .option('-q, --quiet', 'print only the result ID')
    .option('--raw', "pass step output's terminal escape sequences through (by default only colours are kept)")
    .addHelpText('after', `
Exit status: 0 built; 1 the spec is invalid or a step failed (the message names the step);
2 usage error; 130 interrupted.

Examples:
  cairn build -f examples/hello.spec examples/hello
  cairn build -f build.spec . --store btrfs:/var/lib/cairn/btrfs --secret npmrc:$HOME/.npmrc
  cairn build -f build.spec . --json | jq -r .id
  cairn build -f build.spec . --progress json | jq -c 'select(.event == "step-finished")'
  id=$(cairn build -q -f build.spec .)`)
    .action(async (context: string, opts: BuildOpts, command: Command) => {
      const { spec } = await readSpec(io, opts.file);
      const secrets = await readSecretFiles(opts.secret);
      // The engine loads only for commands that build: `cairn --help` stays quick.
      const { openBuilder, BuildError, CancelledError } = await import('../engine-config.js');
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
      try {
        const id = await builder.build(spec, { contextDir: context, secrets, log: view.log, signal: controller.signal });
        const durationMs = Date.now() - started;
        view.succeeded(id, durationMs);
        const steps = view.steps.map((s) => ({ op: s.op, id: s.id, cached: s.cached, ms: s.ms }));
        if (opts.json) io.out(`${JSON.stringify({ id, durationMs, steps })}\n`);
        else if (opts.quiet) io.out(`${id}\n`);
      } catch (e) {
        view.failed(e instanceof Error ? e.message : String(e), Date.now() - started);
        if (e instanceof CancelledError) {
          io.err(`cairn: build of ${displayName(opts.file)} interrupted\n`);
          setExit(EXIT.interrupted);
          return;
        }
        if (e instanceof BuildError) throw new UserError(e.message);
        throw e;
      } finally {
        process.off('SIGINT', interrupt);
        process.off('SIGTERM', interrupt);
        builder.close();
      }
      setExit(EXIT.ok);
    });
}



/** Base images plus run and copy ops, over the spec and its child builds. */
function snapshotSteps(spec: Spec): number {
  return 1 + spec.ops.filter((op) => op.op === 'run' || op.op === 'copy').length
    + spec.childBuilds.reduce((n, c) => n + snapshotSteps(c.spec), 0);
}
