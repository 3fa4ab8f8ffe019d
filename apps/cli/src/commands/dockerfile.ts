import { Option, type Command } from 'commander';
import { dockerfileOfSpec } from '@cairn/spec';
import type { Io } from '../io.js';
import { inSpecFile, readSpec } from '../read-spec.js';

export function registerDockerfile(program: Command, io: Io): void {
  program
    .command('dockerfile')
    .summary('convert a spec to a Dockerfile')
    .description('Print the Dockerfile equivalent to a spec, exactly as `obuilder dockerfile` does.')
    .requiredOption('-f, --file <spec>', 'the spec file (- for stdin)')
    .option('--buildkit', 'emit RUN --mount=type=cache|secret for caches and secrets')
    .addOption(new Option('--escape <style>', 'escape character: \\ (unix) or ` (windows)').choices(['unix', 'windows']).default('unix'))
    .option('--json', 'print {"dockerfile": TEXT} for scripts')
    .addHelpText(
      'after',
      `
Examples:
  cairn dockerfile -f build.spec > Dockerfile
  cairn dockerfile -f build.spec --buildkit | docker build -f - .
  cairn dockerfile -f windows.spec --escape windows`,
    )
    .action(async (opts: { file: string; buildkit?: boolean; escape: 'unix' | 'windows'; json?: boolean }) => {
      const { spec } = await readSpec(io, opts.file);
      const dockerfile = inSpecFile(opts.file, () => dockerfileOfSpec(spec, { buildkit: opts.buildkit ?? false, os: opts.escape }));
      io.out(opts.json ? `${JSON.stringify({ dockerfile })}\n` : dockerfile);
    });
}
