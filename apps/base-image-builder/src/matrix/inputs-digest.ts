/**
 * What an image is made from, as one digest: when it has not changed, the image is not
 * rebuilt and keeps its digest. Two levels:
 *
 * - the *spec digest*, known from the matrix alone (the layer spec's canonical text, the
 *   bootstrap parameters or the parent's name, the platforms): what `cairn images plan`
 *   prints, and what changes when someone edits the image's own part of infra/images/;
 * - the *inputs digest*, which adds what only the cluster knows: the digest the parent is
 *   published under now, and the Debian package versions a probe job resolved from the
 *   archive (`probePackages`). The service compares this one with the inputs of the
 *   image it last published.
 *
 * A parent's change reaches its children through its published digest only, never
 * through its spec: until the parent's rebuild succeeds, its children keep their images.
 */
import { sha256Hex } from '@cairn/hashing';
import type { Matrix, MatrixImage } from './matrix.js';

export const sha256 = (text: string) => `sha256:${sha256Hex(text)}`;

/** Each image's spec digest, by name. */
export function specDigests(matrix: Matrix): Map<string, string> {
  return new Map(matrix.images.map((image) => [image.name, specDigestOf(image)]));
}

function specDigestOf(image: MatrixImage): string {
  return sha256(
    JSON.stringify({ v: 1, spec: image.canonicalSpec, bootstrap: image.bootstrap ?? null, parent: image.parent ?? null, platforms: image.platforms }),
  );
}

export interface LiveInputs {
  readonly specDigest: string;
  /** The parent's published image digest (none for a bootstrap image). */
  readonly parentDigest?: string;
  /** The digest of the resolved packages (probePackages), for an image that probes. */
  readonly packages?: string;
}

export function inputsDigest(inputs: LiveInputs): string {
  return sha256(JSON.stringify({ v: 1, spec: inputs.specDigest, parent: inputs.parentDigest ?? null, packages: inputs.packages ?? null }));
}

/** The probe job's command: what `apt-get` would install or upgrade, read from the archive's index now. */
export function probeCommand(packages: readonly string[]): string {
  return `apt-get update -qq >/dev/null && apt-get install -s --no-install-recommends ${packages.join(' ')} && apt-get upgrade -s`;
}

export class ProbeError extends Error {
  override readonly name = 'ProbeError';
}

/**
 * `package=version` lines, sorted, from `apt-get install -s` / `upgrade -s` output: the
 * versions that would be installed (`Inst libc6 [2.36-9] (2.36-9+deb12u4 Debian:12 ...)`)
 * and those already there at the newest version (`dune is already the newest version
 * (3.6.2-1).`). Output naming no package at all is an error, never "unchanged": a probe
 * that failed quietly must not hide an update.
 */
export function probePackages(output: string): string {
  const found = new Set<string>();
  for (const line of output.split('\n')) {
    const inst = /^Inst (\S+) (?:\[[^\]]*\] )?\((\S+)/.exec(line);
    const newest = /^(\S+) is already the newest version \(([^)]+)\)/.exec(line);
    const m = inst ?? newest;
    if (m) found.add(`${m[1]}=${m[2]}`);
  }
  if (found.size === 0) throw new ProbeError(`the probe printed no package versions (first line: ${JSON.stringify(output.split('\n')[0] ?? '')})`);
  return [...found].sort().join('\n');
}
