import { readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { baseImagesOfDockerfile, importDockerfile, printSpec, type BaseImage, type ContextReader } from '@cairn/spec';
import { collect, displayName, parsePair, readInput, type Io } from '../io.js';

export function registerImport(program: Command, io: Io): void {
  program
    .command('import')
    .summary('convert a Dockerfile to a spec')
    .description(
      "Print the spec equivalent to a Dockerfile. Image metadata (CMD, ENTRYPOINT, EXPOSE, LABEL, ...) changes no file, so a spec does not hold it: it is dropped, each instruction with a warning on stderr naming its line, unless --image-config FILE keeps what an image config holds (the final stage's CMD, ENTRYPOINT, LABEL, EXPOSE, STOPSIGNAL) for `cairn build --image REF --image-config FILE`. Anything else the spec language cannot express is an error naming its line. Nothing is dropped silently.",
    )
    .requiredOption('-f, --file <Dockerfile>', 'the Dockerfile (- for stdin)')
    .option('--context <dir>', 'build context whose .dockerignore becomes (exclude ...) of every copy, and in which COPY wildcards are listed')
    .option('--build-arg <NAME=VALUE>', 'value for an ARG (repeatable)', collect, [])
    .option(
      '--image-config <file>',
      "write the final stage's CMD, ENTRYPOINT, LABEL, EXPOSE and STOPSIGNAL to FILE as JSON, for `cairn build --image REF --image-config FILE`; VOLUME, HEALTHCHECK, ONBUILD, MAINTAINER and earlier stages' metadata stay dropped",
    )
    .option('--strict', 'refuse image metadata instead of dropping it with a warning (with --image-config, refuse only what is not carried)')
    .option(
      '--resolve',
      'read each base image (through the fetcher `cairn build` uses) so that its env ($PATH...), user and group names, WorkingDir and User become literal values in the spec',
    )
    .option('--fetcher <spec>', 'where --resolve reads images: oci:/layout, registry:http://host:port or docker (default: CAIRN_FETCHER or the machine config)')
    .option('--json', 'print {"spec": TEXT, "ast": {...}, "warnings": [...]} for scripts (warnings then go there, not to stderr)')
    .addHelpText(
      'after',
      `
Examples:
  cairn import -f Dockerfile > build.spec
  cairn import -f Dockerfile --context . --build-arg VERSION=1.2
  cairn import -f Dockerfile --strict
  cairn import -f Dockerfile --image-config image.json > app.spec
  cairn build -f app.spec . --image app:1 --oci-layout out --image-config image.json
  cairn import -f Dockerfile --resolve --fetcher oci:/srv/images

The --image-config file holds the keys that are set, in this order (shell-form CMD and
ENTRYPOINT are written as the stage's SHELL, /bin/sh -c by default, plus the line):
  {"entrypoint": ["/bin/sh", "-c", "exec app"], "cmd": ["--serve"],
   "labels": {"org.opencontainers.image.title": "app"},
   "exposedPorts": ["8080/tcp"], "stopSignal": "SIGTERM"}`,
    )
    .action(
      async (opts: {
        file: string;
        context?: string;
        buildArg: string[];
        imageConfig?: string;
        strict?: boolean;
        resolve?: boolean;
        fetcher?: string;
        json?: boolean;
      }) => {
        const text = await readInput(io, opts.file, 'Dockerfile');
        const buildArgs = Object.fromEntries(opts.buildArg.map((a) => parsePair(a, '--build-arg')));
        const images = opts.resolve ? await resolveImages(text, displayName(opts.file), buildArgs, opts.fetcher) : undefined;
        const dockerignore = opts.context === undefined ? undefined : await readOptional(join(opts.context, '.dockerignore'));
        const { spec, warnings, imageConfig } = importDockerfile(text, {
          file: displayName(opts.file),
          buildArgs,
          strict: opts.strict ?? false,
          ...(opts.imageConfig === undefined ? {} : { imageConfigFile: opts.imageConfig }),
          ...(dockerignore === undefined ? {} : { dockerignore }),
          ...(opts.context === undefined ? {} : { readContext: contextReader(opts.context) }),
          ...(images === undefined ? {} : { images }),
        });
        // Key order is imageConfig's, fixed: the same Dockerfile writes the same bytes.
        if (opts.imageConfig !== undefined) await writeFile(opts.imageConfig, `${JSON.stringify(imageConfig, null, 2)}\n`);
        if (opts.json) {
          const listed = warnings.map((w) => ({ file: w.file, line: w.pos.line, column: w.pos.column, message: w.reason }));
          io.out(`${JSON.stringify({ spec: printSpec(spec), ast: spec, warnings: listed })}\n`);
          return;
        }
        for (const w of warnings) io.err(`cairn: warning: ${w.message}\n`);
        io.out(printSpec(spec));
      },
    );
}

/** What the import needs of each image the stages start from. */
async function resolveImages(text: string, file: string, buildArgs: Record<string, string>, fetcher: string | undefined): Promise<Record<string, BaseImage>> {
  const names = baseImagesOfDockerfile(text, { file, buildArgs });
  // The engine loads only for --resolve: a plain import stays quick.
  const { openConfiguredFetcher, readBaseImages } = await import('@cairn/builder');
  return readBaseImages(await openConfiguredFetcher(fetcher === undefined ? {} : { fetcher }), names);
}

/** A context directory's entries by name, as Go's ReadDir sorts them; undefined where there is no directory. */
function contextReader(root: string): ContextReader {
  return (dir) => {
    try {
      return readdirSync(join(root, dir), { withFileTypes: true })
        .map((e) => ({ name: e.name, directory: e.isDirectory() }))
        .sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    } catch (e) {
      if (['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw e;
    }
  };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
