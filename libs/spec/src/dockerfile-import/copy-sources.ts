/** COPY and ADD: the sources and destinations a spec copy can express, and where a copy comes from. */
import type { CopySource } from '../ast.js';
import { SpecError } from '../spec-error.js';
import { trimEnd } from './characters.js';
import { excludeName } from './dockerignore.js';
import type { Stage } from './importer.js';
import type { FlagValue, Instruction } from './instructions.js';

/** Names ADD would unpack if the file is the archive its name says (BuildKit checks the content). */
const ARCHIVE = /\.(tar|tgz|tbz2?|txz|tzst|tlz|taz|tar\.(gz|bz2|xz|zst|lz|lzma|z))$/i;
const REMOTE = /^(https?:\/\/|git:\/\/|ssh:\/\/|git@)/i;

/** A local file ADD would unpack, by its name (BuildKit looks at its content). */
export const isArchive = (src: string) => ARCHIVE.test(src) && !REMOTE.test(src);

export const isHttpUrl = (src: string) => /^https?:\/\//i.test(src);

export const isWildcard = (src: string) => /[*?[]/.test(src);

/** What a wildcard source can become: the matches the caller listed in the context, or nothing known. */
export type Wildcards = 'listed' | 'no context' | 'stage';

export function checkSource(src: string, ins: Instruction, wildcards: Wildcards): void {
  const fail = (why: string) => {
    throw new SpecError(`${ins.keyword} ${src}: ${why}`, ins.pos);
  };
  if (src === '') fail('a source path is empty');
  if (ins.keyword === 'ADD' && REMOTE.test(src))
    fail(
      'ADD of a URL is imported alone (ADD --checksum=sha256:... URL DST), and of http(s) only: a Git repository is cloned at build time, which a spec cannot do',
    );
  if (ins.keyword === 'ADD' && ARCHIVE.test(src)) fail('ADD unpacks an archive: it is imported alone, from the build context (ADD app.tar.gz DST)');
  if (isWildcard(src) && wildcards !== 'listed') {
    fail(
      wildcards === 'stage'
        ? 'a wildcard in another stage cannot be listed, since its files exist only once it is built: a spec copy names each source; list the files'
        : 'a wildcard needs the build context to list what it matches (cairn import --context DIR): a spec copy names each source',
    );
  }
  if (src.split('/').includes('..')) fail('".." cannot be imported: a spec source stays inside the build context or stage');
}

/** `src/`, `src/.` or `.`: a source that can only be a directory, whatever the context holds. */
export const writtenAsDirectory = (src: string) => src === '.' || src.endsWith('/') || src.endsWith('/.');

/** `src/` names a directory by its syntax: Docker copies its contents, a spec copies it by name. */
function namesDirectory(src: string): boolean {
  const parts = src.split('/');
  return (src.endsWith('/') || src.endsWith('/.')) && !parts.every((p) => p === '' || p === '.');
}

/** `.` (or `x/.`) always names a directory to Docker; a spec needs the trailing `/` to say so. */
export function directoryDestination(dst: string, ins: Instruction): string {
  if (dst === '') throw new SpecError(`${ins.keyword}: the destination is empty`, ins.pos);
  return dst === '.' || dst === '..' || dst.endsWith('/.') || dst.endsWith('/..') ? `${dst}/` : dst;
}

/**
 * Docker copies a directory's contents, a spec copies into a destination ending in "/" by
 * name; a source that names a directory by its syntax (`app/`) is therefore copied onto the
 * destination without its "/", which a spec reads as "this directory becomes dst". The
 * sources keep their order, each directory in a copy of its own. A destination that is the
 * workdir (`./`) is written as the workdir's path when the Dockerfile set it.
 */
export function copyTargets(src: readonly string[], dst: string, workdir: string | undefined, ins: Instruction): { src: string[]; dst: string }[] {
  if (src.length > 1 && !dst.endsWith('/')) {
    throw new SpecError(`${ins.keyword} with several sources needs a destination directory ending in "/", not "${dst}"`, ins.pos);
  }
  if (!dst.endsWith('/') || !src.some(namesDirectory)) return [{ src: [...src], dst }];
  const onto = ontoPath(
    trimEnd(dst, (c) => c === '/'),
    workdir,
  );
  if (onto === undefined) {
    const dir = src.find(namesDirectory)!;
    const why =
      workdir === undefined && !dst.startsWith('/')
        ? `${dst} is in the base image's workdir, which the import cannot see`
        : `${dst} has no name to copy it onto`;
    throw new SpecError(
      `${ins.keyword} ${dir} ${dst}: Docker copies the contents of ${dir} into ${dst}, while a spec copies it into ${dst} by name, and ${why}; copy the files of ${dir} by name${workdir === undefined ? ', or set WORKDIR' : ''}`,
      ins.pos,
    );
  }
  const targets: { src: string[]; dst: string }[] = [];
  for (const s of src) {
    const last = targets.at(-1);
    if (namesDirectory(s)) targets.push({ src: [s], dst: onto });
    else if (last !== undefined && last.dst === dst) last.src.push(s);
    else targets.push({ src: [s], dst });
  }
  return targets;
}

/** A name to copy a directory onto: `.` or `..` at the end resolves against a known workdir, never to `/`. */
function ontoPath(path: string, workdir: string | undefined): string | undefined {
  const last = path.split('/').at(-1);
  if (path === '' || (last !== '.' && last !== '..')) return path === '' ? undefined : path;
  const absolute = absolutePath(path, workdir);
  return absolute === '/' ? undefined : absolute;
}

/** The path with `.` and `..` resolved, a relative one against base; undefined when base is unknown. */
export function absolutePath(path: string, base: string | undefined): string | undefined {
  if (!path.startsWith('/') && base === undefined) return undefined;
  const parts: string[] = [];
  for (const part of `${path.startsWith('/') ? '' : base}/${path}`.split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '' && part !== '.') parts.push(part);
  }
  return `/${parts.join('/')}`;
}

export function copySource(flag: FlagValue | undefined, stages: readonly Stage[], current: Stage, ins: Instruction): CopySource {
  if (flag === undefined) return { kind: 'context' };
  const fail = (reason: string): never => {
    throw new SpecError(`${ins.keyword} --from=${flag.value} ${reason}`, flag.pos);
  };
  if (flag.value.includes('$')) fail('uses a variable, which Docker does not expand in --from');
  const earlier = stages.slice(0, stages.indexOf(current));
  const stage = /^\d+$/.test(flag.value) ? stages[Number(flag.value)] : stages.find((s) => s.name === flag.value.toLowerCase());
  if (stage === current) fail('names the stage it is in');
  if (stage !== undefined && earlier.includes(stage)) return { kind: 'build', name: stage.name };
  if (/^\d+$/.test(flag.value)) fail(`names no earlier stage (there are ${earlier.length})`);
  return fail(
    `names no earlier stage, so Docker would copy from the image "${flag.value}"; a spec copies only from the context or a stage, so add "FROM ${flag.value} AS some-name" before this stage and copy --from=some-name`,
  );
}

export function copyExcludes(flags: readonly FlagValue[], ins: Instruction): string[] {
  return flags.map((f) =>
    excludeName(f.value, () => {
      throw new SpecError(`${ins.keyword} --exclude=${f.value} cannot be imported: a spec excludes a plain file or directory name at any depth`, f.pos);
    }),
  );
}

/** The entries of a directory of the build context (`''` is its root), or undefined if there is none. */
export type ContextReader = (dir: string) => readonly { readonly name: string; readonly directory: boolean }[] | undefined;

/** Go's filepath.Glob over the context: each part of the pattern matched against one directory's names, in sorted order. */
export function contextGlob(pattern: string, read: ContextReader): { path: string; directory: boolean }[] {
  let found: { path: string; directory: boolean }[] = [{ path: '', directory: true }];
  for (const part of pattern.split('/').filter((p) => p !== '' && p !== '.')) {
    const re = goPattern(part);
    found = found
      .filter((f) => f.directory)
      .flatMap((dir) =>
        (read(dir.path) ?? [])
          .filter((e) => re.test(e.name))
          .map((e) => ({ path: dir.path === '' ? e.name : `${dir.path}/${e.name}`, directory: e.directory })),
      );
  }
  return found.filter((f) => f.path !== '');
}

/** filepath.Match's syntax as a RegExp: `*`, `?`, `[...]` (with `^` and ranges), `\\` escapes; a bad class matches nothing, as Match fails. */
function goPattern(part: string): RegExp {
  let out = '';
  for (let i = 0; i < part.length; i++) {
    const c = part[i]!;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '\\' && i + 1 < part.length) out += escapeRegex(part[++i]!);
    else if (c === '[') {
      const end = part.indexOf(']', i + 2);
      if (end < 0) return /(?!)/;
      const body = part.slice(i + 1, end);
      out += `[${body.startsWith('^') ? `^${escapeClass(body.slice(1))}` : escapeClass(body)}]`;
      i = end;
    } else out += escapeRegex(c);
  }
  return new RegExp(`^${out}$`, 'u');
}

const escapeRegex = (c: string) => c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const escapeClass = (body: string) => body.replace(/[\]\\^]/g, '\\$&');
