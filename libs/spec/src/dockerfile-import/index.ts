import type { Spec } from '../ast.js';
import type { Position } from '../sexp.js';
import { SpecError } from '../spec-error.js';
import { excludesOfDockerignore } from './dockerignore.js';
import type { ContextReader } from './copy-sources.js';
import { Importer, type BaseImage, type ImportedImageConfig } from './importer.js';
import { readEntries } from './lines.js';
import { parseInstruction } from './instructions.js';

/**
 * Dockerfile import: a Dockerfile becomes the one spec AST, so nothing downstream knows
 * which text a spec came from. Reading follows BuildKit's Dockerfile frontend (parser
 * directives, line continuations, flags, JSON forms, variable substitution, heredocs).
 * Whatever a spec cannot express faithfully is a SpecError naming the line; what changes
 * no file (image metadata) or is pinned at import (a wildcard's matches) is a warning
 * naming the line, never dropped silently.
 *
 * Where Docker and a spec differ, the import keeps Docker's meaning:
 * - RUN uses Docker's shell, `/bin/sh -c`, not the spec default bash: a `(shell /bin/sh -c)`
 *   comes before the first RUN of a stage (and after any SHELL, the SHELL's arguments).
 * - RUN gets `(network host)`: Docker's RUN reaches the network by default, a spec's does
 *   not. `--network=none` gives no network field.
 * - An ARG with a value becomes `(env NAME VALUE)` where it is declared: BuildKit adds it to
 *   the environment of every later RUN of the stage, exactly like an ENV.
 * - COPY writes root-owned files unless `--chown`, whatever USER says, while a spec copy is
 *   owned by the current user: when they differ the copy is wrapped in `(user ...)` ops.
 * - The base image's config is invisible here unless the caller read it (`images`, which
 *   `cairn import --resolve` fills): without it a variable must be set by an ARG or ENV of
 *   the Dockerfile to be expanded, and the workdir, user and shell start as Docker's
 *   defaults for an image that sets none (`/`, root, `/bin/sh -c`), as in OBuilder; with
 *   it the image's Env expands, and its WorkingDir and User become the stage's first ops.
 * - Image metadata (CMD, EXPOSE, LABEL, ...) changes no file, so a spec has nothing to say
 *   for it: `importDockerfile` drops it with a warning, `strict` (and `specOfDockerfile`,
 *   which callers that show no warnings use) refuses it. What an image config holds
 *   (CMD, ENTRYPOINT, LABEL, EXPOSE, STOPSIGNAL) of the final stage is also returned as
 *   `imageConfig`, as BuildKit sets it; with `imageConfigFile` its warnings say it went
 *   there (and `strict` accepts it).
 */
export interface DockerfileImportOptions {
  /** Contents of a .dockerignore, if any: its patterns become `exclude` of every context copy. */
  readonly dockerignore?: string;
  /** Values for ARGs given on the command line (override defaults). */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** File name used in error messages. */
  readonly file?: string;
  /** Refuse what would otherwise be dropped with a warning (image metadata). */
  readonly strict?: boolean;
  /**
   * What the caller read of base images, by the name FROM gives them (after ARGs): their Env
   * expands `$PATH` and the like, their /etc/passwd and /etc/group turn user and group names
   * into ids. Without them, such a variable or name is an error naming what is missing.
   */
  readonly images?: Readonly<Record<string, BaseImage>>;
  /**
   * Lists a directory of the build context, so that a wildcard source of a context COPY
   * becomes the paths it matches there (Go's filepath.Glob, as Docker matches), each named
   * in the spec, with a warning. Without it a wildcard is an error.
   */
  readonly readContext?: ContextReader;
  /**
   * Where the caller writes `imageConfig` (`cairn import --image-config FILE`): the final
   * stage's CMD, ENTRYPOINT, LABEL, EXPOSE and STOPSIGNAL are then carried there, each
   * with a warning saying so, instead of dropped.
   */
  readonly imageConfigFile?: string;
}

export type { BaseImage, ContextReader, ImportedImageConfig };

/** Something of the Dockerfile the spec leaves out, and why: data, for the caller to show. */
export interface DockerfileWarning {
  readonly reason: string;
  readonly pos: Position;
  readonly file?: string;
  /** `file:line:column: reason`, as a SpecError's message reads. */
  readonly message: string;
}

export interface DockerfileImport {
  readonly spec: Spec;
  readonly warnings: readonly DockerfileWarning[];
  /** The final stage's image settings, as BuildKit would set them on the image (base image's aside). */
  readonly imageConfig: ImportedImageConfig;
}

/**
 * The images a Dockerfile's stages start from, ARGs before FROM expanded (with
 * `buildArgs`): what a caller reads for `images`. Only FROM and the ARGs before it are
 * looked at, so a Dockerfile that needs those images to import still lists them.
 */
export function baseImagesOfDockerfile(text: string, options: Pick<DockerfileImportOptions, 'buildArgs' | 'file'> = {}): string[] {
  try {
    const { entries, directives } = readEntries(text);
    const importer = new Importer(directives.escape, [], options.buildArgs ?? {}, false, {}, undefined, undefined);
    let seenFrom = false;
    for (const entry of entries) {
      if (entry.kind === 'comment') continue;
      const keyword = parseInstruction(entry.logical)?.keyword;
      seenFrom ||= keyword === 'FROM';
      if (keyword === 'FROM' || (keyword === 'ARG' && !seenFrom)) importer.add(entry);
    }
    return importer.baseImages();
  } catch (e) {
    if (e instanceof SpecError && options.file !== undefined && e.file === undefined) throw e.inFile(options.file);
    throw e;
  }
}

export function importDockerfile(text: string, options: DockerfileImportOptions = {}): DockerfileImport {
  try {
    const excludes = options.dockerignore === undefined ? [] : excludesOfDockerignore(options.dockerignore);
    const { entries, directives } = readEntries(text);
    const importer = new Importer(
      directives.escape,
      excludes,
      options.buildArgs ?? {},
      options.strict ?? false,
      options.images ?? {},
      options.readContext,
      options.imageConfigFile,
    );
    for (const entry of entries) importer.add(entry);
    const spec = importer.finish();
    const warnings = importer.warnings.map(({ reason, pos }) => warning(reason, pos, options.file));
    return { spec, warnings, imageConfig: importer.imageConfig() };
  } catch (e) {
    if (e instanceof SpecError && options.file !== undefined && e.file === undefined) throw e.inFile(options.file);
    throw e;
  }
}

function warning(reason: string, pos: Position, file: string | undefined): DockerfileWarning {
  const message = `${file === undefined ? '' : `${file}:`}${pos.line}:${pos.column}: ${reason}`;
  return { reason, pos, ...(file === undefined ? {} : { file }), message };
}

/** The spec alone, refusing whatever `importDockerfile` would warn about, for callers that show no warnings. */
export function specOfDockerfile(text: string, options: DockerfileImportOptions = {}): Spec {
  return importDockerfile(text, { ...options, strict: true }).spec;
}
