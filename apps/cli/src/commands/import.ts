import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { printSpec, specOfDockerfile } from '@cairn/spec';
import { collect, displayName, parsePair, readInput, type Io } from '../io.js';

export function registerImport(program: Command, io: Io): void {
  program
    .command('import')
    .summary('convert a Dockerfile to a spec')
    .description('Print the spec equivalent to a Dockerfile. Anything the spec language cannot express is an error naming its line; nothing is dropped silently.')
    .requiredOption('-f, --file <Dockerfile>', 'the Dockerfile (- for stdin)')
    .option('--context <dir>', 'build context whose .dockerignore becomes (exclude ...) of every copy')
    .option('--build-arg <NAME=VALUE>', 'value for an ARG (repeatable)', collect, [])
    .option('--json', 'print {"spec": TEXT, "ast": {...}} for scripts')
    .addHelpText('after', `
Examples:
  cairn import -f Dockerfile > build.spec
  cairn import -f Dockerfile --context . --build-arg VERSION=1.2`)
    .action(async (opts: { file: string; context?: string; buildArg: string[]; json?: boolean }) => {
      const text = await readInput(io, opts.file, 'Dockerfile');
      const dockerignore = opts.context === undefined ? undefined : await readOptional(join(opts.context, '.dockerignore'));
      const buildArgs = Object.fromEntries(opts.buildArg.map((a) => parsePair(a, '--build-arg')));
      const spec = specOfDockerfile(text, { file: displayName(opts.file), buildArgs, ...(dockerignore === undefined ? {} : { dockerignore }) });
      io.out(opts.json ? `${JSON.stringify({ spec: printSpec(spec), ast: spec })}\n` : printSpec(spec));
    });
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
