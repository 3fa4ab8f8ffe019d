/**
 * The image matrix (infra/images/matrix.yaml and the spec files beside it), read and
 * checked once: every problem is reported naming the file and the field, and what comes
 * back is the images in dependency order (a parent before its children), each with its
 * parsed layer spec. Nothing here does I/O but reading those files.
 */
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Cron } from 'croner';
import { parseDocument } from 'yaml';
import { didYouMean, parseSpec, printSpec, SpecError, type Spec } from '@cairn/spec';

/** How an image without a parent gets its first root filesystem. */
export type Bootstrap =
  { readonly kind: 'busybox-static' } | { readonly kind: 'debootstrap'; readonly suite: string; readonly variant: string; readonly mirror: string };

export interface MatrixImage {
  /** `repository:tag`, the name jobs use in `(from ...)` (behind the registry's address). */
  readonly name: string;
  readonly repository: string;
  /** Every tag it is published under in its repository; the name's own first. */
  readonly tags: readonly string[];
  /** Exactly one of bootstrap and parent. */
  readonly bootstrap?: Bootstrap;
  readonly parent?: string;
  /** The spec file, relative to the matrix directory, and its canonical text. */
  readonly specFile: string;
  readonly spec: Spec;
  readonly canonicalSpec: string;
  readonly pools: readonly string[];
  readonly platforms: readonly string[];
  /** Cron, in UTC. */
  readonly schedule: string;
  /** Debian packages whose resolved versions are inputs (empty: nothing to probe). */
  readonly probe: readonly string[];
}

export interface Matrix {
  /** In dependency order: every parent before its children. */
  readonly images: readonly MatrixImage[];
}

/** A bad matrix: the message names the file and the field. */
export class MatrixError extends Error {
  override readonly name = 'MatrixError';
}

/** The `(from ...)` of an image whose base is its bootstrap rather than a parent. */
export const BOOTSTRAP_FROM = 'bootstrap';
export const MATRIX_FILE = 'matrix.yaml';

const NAME = /^[a-z0-9]+(?:[._/-][a-z0-9]+)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const POOL = /^[A-Za-z0-9_-]{1,64}$/;
const PLATFORM = /^[a-z0-9]+\/[a-z0-9]+(?:\/[a-z0-9]+)?$/;
const PACKAGE = /^[a-z0-9][a-z0-9+.-]+$/;
const IMAGE_FIELDS = ['name', 'tags', 'bootstrap', 'parent', 'spec', 'pools', 'platforms', 'schedule', 'probe'];
const DEFAULT_FIELDS = ['pools', 'platforms', 'schedule'];

/** Reads `dir`/matrix.yaml and the spec files it names. `shownDir` is how messages name `dir`. */
export async function loadMatrix(dir: string, shownDir = dir): Promise<Matrix> {
  const file = join(shownDir, MATRIX_FILE);
  let text: string;
  try {
    text = await readFile(join(dir, MATRIX_FILE), 'utf8');
  } catch (e) {
    throw new MatrixError(`${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const specs = new Map<string, string>();
  return parseMatrix(text, file, async (name) => {
    let spec = specs.get(name);
    if (spec === undefined) {
      try {
        spec = await readFile(join(dir, name), 'utf8');
      } catch (e) {
        throw new Error(`cannot read ${join(shownDir, name)} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
      }
      specs.set(name, spec);
    }
    return { text: spec, shown: join(shownDir, name) };
  });
}

type SpecReader = (name: string) => Promise<{ text: string; shown: string }>;

/** The matrix in `text` (read from `file`), its spec files read through `readSpec`. */
export async function parseMatrix(text: string, file: string, readSpec: SpecReader): Promise<Matrix> {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) throw new MatrixError(`${file}: not YAML: ${doc.errors[0]!.message}`);
  const root = doc.toJS() as unknown;
  const fail = (field: string, problem: string): never => {
    throw new MatrixError(`${file}: ${field}: ${problem}`);
  };
  if (!isRecord(root)) return fail('(top)', 'the matrix is a mapping with `images` (and optionally `defaults`)');
  unknownFields(root, ['defaults', 'images'], '(top)', fail);
  const defaults = root.defaults ?? {};
  if (!isRecord(defaults)) return fail('defaults', 'a mapping of pools, platforms and schedule');
  unknownFields(defaults, DEFAULT_FIELDS, 'defaults', fail);
  if (!Array.isArray(root.images) || root.images.length === 0) return fail('images', 'a list of at least one image');

  const images: MatrixImage[] = [];
  const seen = new Set<string>();
  const names = (root.images as unknown[]).flatMap((e) => (isRecord(e) && typeof e.name === 'string' ? [e.name] : []));
  for (const [i, entry] of (root.images as unknown[]).entries()) {
    const at = (field?: string) => `images[${i}]${isRecord(entry) && typeof entry.name === 'string' ? ` (${entry.name})` : ''}${field ? `.${field}` : ''}`;
    if (!isRecord(entry)) return fail(at(), 'an image is a mapping with name, spec and a bootstrap or a parent');
    unknownFields(entry, IMAGE_FIELDS, at(), fail);
    const name = entry.name;
    if (typeof name !== 'string' || !NAME.test(name))
      return fail(at('name'), `${JSON.stringify(name)} is not repository:tag (lower-case repository, e.g. debian:bookworm)`);
    if (seen.has(name)) return fail(at('name'), `${name} is in the matrix twice`);
    seen.add(name);
    const [repository, ownTag] = splitName(name);
    const tags = strings(entry.tags ?? [ownTag], at('tags'), TAG, 'a tag', fail);
    if (!tags.includes(ownTag)) return fail(at('tags'), `must include ${ownTag}, the tag of the name`);
    const hasBootstrap = entry.bootstrap !== undefined;
    const hasParent = entry.parent !== undefined;
    if (hasBootstrap === hasParent) return fail(at(), 'give exactly one of bootstrap (busybox-static or debootstrap) and parent');
    const bootstrap = hasBootstrap ? readBootstrap(entry.bootstrap, at('bootstrap'), fail) : undefined;
    if (hasParent && typeof entry.parent !== 'string') return fail(at('parent'), 'the name of another image of the matrix');
    const parent = hasParent ? (entry.parent as string) : undefined;
    if (parent !== undefined && !names.includes(parent)) return fail(at('parent'), `${parent} is not an image of the matrix${didYouMean(parent, names)}`);
    if (typeof entry.spec !== 'string' || entry.spec === '' || entry.spec.startsWith('/') || entry.spec.split('/').includes('..')) {
      return fail(at('spec'), 'a spec file beside the matrix (a relative path without ..)');
    }
    let read: { text: string; shown: string };
    try {
      read = await readSpec(entry.spec);
    } catch (e) {
      return fail(at('spec'), e instanceof Error ? e.message : String(e));
    }
    let spec: Spec;
    try {
      spec = parseSpec(read.text, read.shown);
    } catch (e) {
      if (e instanceof SpecError) return fail(at('spec'), e.message);
      throw e;
    }
    const from = parent ?? BOOTSTRAP_FROM;
    if (spec.from !== from)
      return fail(at('spec'), `${read.shown} starts (from ${spec.from}); it must be (from ${from}), the image's ${parent ? 'parent' : 'bootstrap'}`);
    if (spec.childBuilds.length > 0) return fail(at('spec'), `${read.shown}: a base image's layers have no (build ...) stages`);
    const schedule = entry.schedule ?? defaults.schedule;
    if (typeof schedule !== 'string') return fail(at('schedule'), 'a cron schedule (here or under defaults), e.g. "0 3 * * 1"');
    try {
      new Cron(schedule, { paused: true, timezone: 'UTC' }).stop();
    } catch (e) {
      return fail(at('schedule'), `${JSON.stringify(schedule)} is not a cron schedule (${e instanceof Error ? e.message : String(e)})`);
    }
    const platforms = strings(
      entry.platforms ?? defaults.platforms ?? ['linux/amd64'],
      entry.platforms === undefined ? 'defaults.platforms' : at('platforms'),
      PLATFORM,
      'a platform (os/arch)',
      fail,
      true,
    );
    // The index takes one entry per platform, but each would need its own build on a pool of that platform.
    if (platforms.length > 1)
      return fail(entry.platforms === undefined ? 'defaults.platforms' : at('platforms'), 'one platform per image for now (docs/base-images.md)');
    images.push({
      name,
      repository,
      tags: [ownTag, ...tags.filter((t) => t !== ownTag)],
      ...(bootstrap ? { bootstrap } : {}),
      ...(parent ? { parent } : {}),
      specFile: entry.spec,
      spec,
      canonicalSpec: printSpec(spec),
      pools: strings(entry.pools ?? defaults.pools, entry.pools === undefined ? 'defaults.pools' : at('pools'), POOL, 'a pool name', fail, true),
      platforms,
      schedule,
      probe: strings(entry.probe ?? [], at('probe'), PACKAGE, 'a Debian package name', fail),
    });
  }
  return { images: dependencyOrder(images, file) };
}

export function splitName(name: string): [repository: string, tag: string] {
  const colon = name.lastIndexOf(':');
  return [name.slice(0, colon), name.slice(colon + 1)];
}

/** Parents before children, otherwise in the file's order; a cycle is an error. */
function dependencyOrder(images: readonly MatrixImage[], file: string): MatrixImage[] {
  const byName = new Map(images.map((image) => [image.name, image]));
  const ordered: MatrixImage[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (image: MatrixImage, path: string[]) => {
    if (state.get(image.name) === 'done') return;
    if (state.get(image.name) === 'visiting') throw new MatrixError(`${file}: images: the parents go round in a circle: ${[...path, image.name].join(' -> ')}`);
    state.set(image.name, 'visiting');
    if (image.parent !== undefined) {
      visit(byName.get(image.parent)!, [...path, image.name]);
    }
    state.set(image.name, 'done');
    ordered.push(image);
  };
  for (const image of images) visit(image, []);
  return ordered;
}

function readBootstrap(value: unknown, field: string, fail: (field: string, problem: string) => never): Bootstrap {
  if (!isRecord(value)) return fail(field, 'a mapping with kind: busybox-static or debootstrap');
  if (value.kind === 'busybox-static') {
    unknownFields(value, ['kind'], field, fail);
    return { kind: 'busybox-static' };
  }
  if (value.kind === 'debootstrap') {
    unknownFields(value, ['kind', 'suite', 'variant', 'mirror'], field, fail);
    const text = (key: string, pattern: RegExp, what: string, fallback?: string) => {
      const v = value[key] ?? fallback;
      if (typeof v !== 'string' || !pattern.test(v)) return fail(`${field}.${key}`, `${JSON.stringify(v)} is not ${what}`);
      return v;
    };
    return {
      kind: 'debootstrap',
      suite: text('suite', /^[a-z][a-z0-9-]*$/, 'a Debian suite (e.g. bookworm)'),
      variant: text('variant', /^(minbase|buildd|fakechroot)$/, 'a debootstrap variant (minbase, buildd, fakechroot)', 'minbase'),
      mirror: text('mirror', /^https?:\/\/[^\s]+$/, 'an http(s) URL of a Debian mirror', 'http://deb.debian.org/debian'),
    };
  }
  return fail(`${field}.kind`, `${JSON.stringify(value.kind)} is not a bootstrap (busybox-static or debootstrap)`);
}

function strings(value: unknown, field: string, pattern: RegExp, what: string, fail: (field: string, problem: string) => never, nonEmpty = false): string[] {
  if (!Array.isArray(value) || (nonEmpty && value.length === 0)) return fail(field, `a list of ${what}s${nonEmpty ? ', at least one' : ''}`);
  return value.map((v, i) => {
    // YAML reads an unquoted 12 as a number: a tag or package is text whatever it looks like.
    const s = typeof v === 'number' ? String(v) : v;
    if (typeof s !== 'string' || !pattern.test(s)) return fail(`${field}[${i}]`, `${JSON.stringify(v)} is not ${what}`);
    return s;
  });
}

function unknownFields(value: Record<string, unknown>, known: readonly string[], field: string, fail: (field: string, problem: string) => never): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) fail(`${field}.${key}`, `not a field (known: ${known.join(', ')})${didYouMean(key, known)}`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** `path` as messages show it: relative to the working directory when inside it. */
export function shownPath(path: string, cwd = process.cwd()): string {
  const rel = relative(cwd, path);
  return rel.startsWith('..') || rel === '' ? path : rel;
}
