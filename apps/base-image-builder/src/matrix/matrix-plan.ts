/**
 * The matrix as `cairn images plan` shows it: one row per image in build order, with
 * what it is built from and its spec digest (inputs-digest.ts), as a table for people
 * and as JSON for scripts.
 */
import { specDigests } from './inputs-digest.js';
import type { Bootstrap, Matrix } from './matrix.js';

export interface PlanRow {
  readonly name: string;
  readonly tags: readonly string[];
  /** The parent image, or the bootstrap as `bootstrap:KIND`. */
  readonly from: string;
  readonly specDigest: string;
  readonly pools: readonly string[];
  readonly platforms: readonly string[];
  readonly schedule: string;
  readonly probe: readonly string[];
  readonly specFile: string;
}

export function matrixPlan(matrix: Matrix): PlanRow[] {
  const digests = specDigests(matrix);
  return matrix.images.map((image) => ({
    name: image.name,
    tags: image.tags,
    from: image.parent ?? bootstrapLabel(image.bootstrap!),
    specDigest: digests.get(image.name)!,
    pools: image.pools,
    platforms: image.platforms,
    schedule: image.schedule,
    probe: image.probe,
    specFile: image.specFile,
  }));
}

function bootstrapLabel(bootstrap: Bootstrap): string {
  return bootstrap.kind === 'debootstrap' ? `debootstrap ${bootstrap.suite} ${bootstrap.variant}` : bootstrap.kind;
}

/** The table: short digests (12 hex digits, as docker prints them), columns padded. */
export function renderPlanTable(rows: readonly PlanRow[]): string {
  const header = ['IMAGE', 'TAGS', 'FROM', 'SPEC DIGEST', 'POOLS', 'SCHEDULE'];
  const cells = rows.map((r) => [r.name, r.tags.join(','), r.from, r.specDigest.slice('sha256:'.length, 'sha256:'.length + 12), r.pools.join(','), r.schedule]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ');
  return [line(header), ...cells.map(line)].join('\n') + '\n';
}
