/**
 * A step's disk limit: how many bytes it may add to its snapshot, held by the store while
 * the step writes (a btrfs qgroup, an XFS project quota, a ZFS quota), since the store,
 * not the sandbox, owns the filesystem the snapshot lives on.
 */

/** What the store holds a build to (Store.build). */
export interface BuildLimits {
  /** Bytes the step may add to its snapshot; each driver's comment says how it counts them. */
  readonly diskBytes?: number;
}

/**
 * The step ran into its disk limit: its writes past it failed. Unlike StoreFullError,
 * the store has room (pruning would not help); nothing is published.
 */
export class DiskLimitError extends Error {
  override readonly name = 'DiskLimitError';

  constructor(
    readonly limitBytes: number,
    options?: ErrorOptions,
  ) {
    super(
      `disk limit ${formatBytes(limitBytes)} reached; nothing was published${saysMore(options?.cause) ? `: ${(options?.cause as Error).message}` : ''}`,
      options,
    );
  }
}

/**
 * Whether a failure's message adds to the limit's: a step's exit status does; a failed
 * write's errno says only the quota again (and EDQUOT, which Node has no name for, as
 * "Unknown system error -122").
 */
function saysMore(cause: unknown): boolean {
  return cause instanceof Error && (cause as NodeJS.ErrnoException).errno === undefined;
}

/** The store cannot hold a step to a disk limit (its kind has no quotas, or its filesystem has them off). */
export class DiskLimitUnsupportedError extends Error {
  override readonly name = 'DiskLimitUnsupportedError';
}

/** A quota set on one build's temp, from `prepare` until the build is published or removed. */
export interface DiskQuota {
  /** Whether the step has used up its limit, so that its failure is the limit's. */
  reached(): Promise<boolean>;
  /** Takes the quota off (what it counted stays counted where a driver keeps it). */
  release(): Promise<void>;
}

const MiB = 1024 * 1024;

/**
 * A write past the limit fails with room left under it: the failed write's own size, and
 * what the filesystem reserves ahead (btrfs reserves metadata against the qgroup too).
 * Less than this left counts as the limit reached.
 */
export function nearLimit(leftBytes: number, limitBytes: number): boolean {
  return leftBytes < Math.max(4 * MiB, limitBytes / 16);
}

/** `64 MiB`, `4 GiB`: a size as a limit's message says it (whole units where they fit). */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`;
  }
  return `${bytes} bytes`;
}
