/**
 * Step IDs, byte-compatible with OBuilder: every snapshot is named by the SHA-256 of a
 * machine-form S-expression describing everything that can change its contents. Any
 * byte that differs from OBuilder's `sexp_of_*` output is a cache miss (or, worse, a
 * collision with a different step), so the field order and nesting below are exact.
 */
import { createHash, createHmac } from 'node:crypto';
import { atom, list, mustQuote, quoteAtom, sexpOfUser, toMachine, type Sexp, type User } from '@cairn/spec';

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** OBuilder names an imported base image by the hash of the `from` string itself. */
export function baseId(image: string): string {
  return sha256Hex(image);
}

const DIGEST_PREFIX = 'hmac-sha256:';
const DIGEST_RE = /^hmac-sha256:[0-9a-f]{64}$/;

/**
 * A keyed digest of a secret value, for the run hash. OBuilder hashes the raw value,
 * which lets anyone holding a published step ID test guesses for a low-entropy secret
 * offline. Keyed with a per-installation key, the digest still changes when the secret
 * is rotated, but reveals nothing to someone without the key.
 */
export function secretDigest(key: string | Uint8Array, value: string | Uint8Array): string {
  return DIGEST_PREFIX + createHmac('sha256', key).update(value).digest('hex');
}

export interface SecretInput {
  readonly target: string;
  /** From `secretDigest`; never the raw value. */
  readonly digest: string;
}

export interface RunInput {
  readonly base: string;
  readonly workdir: string;
  readonly user: User;
  /** Context order: newest binding first, the base image's env last. */
  readonly env: readonly (readonly [string, string])[];
  readonly cmd: string;
  readonly shell: readonly string[];
  readonly network: readonly string[];
  readonly secrets: readonly SecretInput[];
  /**
   * The trust domain whose caches the step mounts (runInputOf sets it only for a step
   * that mounts one, and only when the build has a domain: a cluster job). What such a
   * step leaves in its snapshot may come from the domain's caches, so another domain
   * must not get it as a cache hit. Not in OBuilder's record: unset, the ID is OBuilder's.
   */
  readonly cacheDomain?: string;
}

const field = (name: string, value: Sexp): Sexp => list(atom(name), value);
const atoms = (values: readonly string[]): Sexp => list(...values.map(atom));

function sexpOfSecret(secret: SecretInput): Sexp {
  // A raw value here would leak into every published ID; refuse anything that is not
  // shaped like our digest rather than hash it.
  if (!DIGEST_RE.test(secret.digest)) {
    throw new TypeError(`secret for ${secret.target} must be a digest from secretDigest(), not a raw value`);
  }
  // OBuilder's Config.Secret.t is { value; target }: the digest takes the value's place.
  return list(field('value', atom(secret.digest)), field('target', atom(secret.target)));
}

/**
 * OBuilder's `run_input` record, with the secret values replaced by keyed digests, and
 * `(cache_domain D)` last when the step mounts caches of trust domain D.
 */
export function runHashInput(input: RunInput): Sexp {
  const domain = input.cacheDomain === undefined ? [] : [field('cache_domain', atom(input.cacheDomain))];
  return list(
    field('base', atom(input.base)),
    field('workdir', atom(input.workdir)),
    field('user', sexpOfUser(input.user)),
    field('env', list(...input.env.map(([k, v]) => list(atom(k), atom(v))))),
    field('cmd', atom(input.cmd)),
    field('shell', atoms(input.shell)),
    field('network', atoms(input.network)),
    field('mount_secrets', list(...input.secrets.map(sexpOfSecret))),
    ...domain,
  );
}

/** A snapshot step's ID and the hash input it is the SHA-256 of. */
export interface StepKey {
  readonly id: string;
  /** The hash input in machine form: what the plan shows and what the ID hashes. */
  readonly hashInput: string;
}

/** The one recipe for every step ID, so that the planner and the engine cannot drift apart. */
export function stepKey(hashInput: Sexp): StepKey {
  const machine = toMachine(hashInput);
  return { id: sha256Hex(machine), hashInput: machine };
}

export function runId(input: RunInput): string {
  return stepKey(runHashInput(input)).id;
}

/** A copy source as OBuilder's Manifest.t: contents by hash, no modes or times. */
export type Manifest =
  | { readonly kind: 'file'; readonly path: string; readonly sha256: string }
  | { readonly kind: 'symlink'; readonly path: string; readonly target: string }
  | { readonly kind: 'dir'; readonly path: string; readonly children: readonly Manifest[] };

export function sexpOfManifest(m: Manifest): Sexp {
  switch (m.kind) {
    case 'file':
      return list(atom('File'), list(atom(m.path), atom(m.sha256)));
    case 'symlink':
      return list(atom('Symlink'), list(atom(m.path), atom(m.target)));
    case 'dir':
      return list(atom('Dir'), list(atom(m.path), list(...m.children.map(sexpOfManifest))));
  }
}

/**
 * `toMachine(sexpOfManifest(m))`, printed straight from the manifest: a context of tens of
 * thousands of files would otherwise build a tree of hundreds of thousands of S-expression
 * nodes only to print it. Every entry is a list, so nothing around it changes spacing.
 */
export function manifestMachine(m: Manifest): string {
  const out: string[] = [];
  writeManifest(m, out);
  return out.join('');
}

/** `(Tag(A B))`: the space only between two bare atoms, as toMachine writes it. */
const pairMachine = (tag: string, a: string, b: string): string => `(${tag}(${quoteAtom(a)}${mustQuote(a) || mustQuote(b) ? '' : ' '}${quoteAtom(b)}))`;

function writeManifest(m: Manifest, out: string[]): void {
  switch (m.kind) {
    case 'file':
      out.push(pairMachine('File', m.path, m.sha256));
      return;
    case 'symlink':
      out.push(pairMachine('Symlink', m.path, m.target));
      return;
    case 'dir':
      // A directory's path atom is followed by a list: never a space.
      out.push(`(Dir(${quoteAtom(m.path)}(`);
      for (const child of m.children) writeManifest(child, out);
      out.push(')))');
  }
}

export interface CopyInput {
  readonly base: string;
  readonly user: User;
  readonly items: readonly Manifest[];
  /** The workdir-joined destination, as written (not normalised: `a//b` and `a/b` differ). */
  readonly dst: string;
}

export class CopyError extends Error {
  constructor(
    message: string,
    readonly dst: string,
  ) {
    super(message);
    this.name = 'CopyError';
  }
}

/**
 * OBuilder declares these as polymorphic variants over a tuple, which ppx_sexp_conv
 * writes as one list: `(Copy_items ((M...) DST))`, `(Copy_item (M DST))`, just as a
 * manifest entry is `(File (PATH HEX))`. SPEC-LANGUAGE.md drops that inner pair of
 * parentheses; we follow OBuilder, since matching its IDs is the point (docs/decisions.md).
 *
 * The copy op as OBuilder's `to_copy_op` chooses it: a trailing '/' means "into this
 * directory" whatever the number of sources; otherwise exactly one source becomes dst.
 */
function sexpOfCopyOp(items: readonly Manifest[], dst: string): Sexp {
  checkCopyOp(items, dst);
  if (dst.endsWith('/')) {
    return list(atom('Copy_items'), list(list(...items.map(sexpOfManifest)), atom(dst)));
  }
  return list(atom('Copy_item'), list(sexpOfManifest(items[0]!), atom(dst)));
}

function checkCopyOp(items: readonly Manifest[], dst: string): void {
  if (items.length === 0) {
    throw new CopyError(`no source items for copy to "${dst}"`, dst);
  }
  if (!dst.endsWith('/') && items.length !== 1) {
    throw new CopyError(`copying several items needs a destination ending with '/', got "${dst}" for ${items.length} items`, dst);
  }
}

/** OBuilder's `copy_details` record. */
export function copyHashInput(input: CopyInput): Sexp {
  return list(field('base', atom(input.base)), field('user', sexpOfUser(input.user)), field('op', sexpOfCopyOp(input.items, input.dst)));
}

/**
 * The copy step's key: `stepKey(copyHashInput(input))`, with the manifests printed by
 * manifestMachine. The head and the op's frame come from toMachine; the manifests and the
 * destination sit inside lists after a list or an atom, where toMachine writes no space.
 */
export function copyStepKeyOf(input: CopyInput): StepKey {
  const { items, dst } = input;
  checkCopyOp(items, dst);
  const head = toMachine(list(field('base', atom(input.base)), field('user', sexpOfUser(input.user))));
  const manifests = items.map(manifestMachine);
  const op = dst.endsWith('/') ? `(Copy_items((${manifests.join('')})${quoteAtom(dst)}))` : `(Copy_item(${manifests[0]!}${quoteAtom(dst)}))`;
  const machine = `${head.slice(0, -1)}(op${op}))`;
  return { id: sha256Hex(machine), hashInput: machine };
}

export function copyId(input: CopyInput): string {
  return copyStepKeyOf(input).id;
}
