import { randomInt } from 'node:crypto';
import { nearLimit, type DiskQuota } from './disk-limit.js';
import { mountContaining } from './mount.js';

// Every `xfs_quota` command the stores run: XFS project quotas, one project per build.
// Not yet run against a real XFS with quotas: the development machine's kernel has no
// XFS quota support (CONFIG_XFS_QUOTA unset), so its tests reach only the refusal.

/**
 * Why `root` cannot hold builds to a disk limit with XFS project quotas: it is not on XFS,
 * or that XFS is mounted without them; undefined when it can.
 */
export async function projectQuotaProblem(root: string): Promise<string | undefined> {
  // xfs_quota reads a command as words: a path with blanks would be split.
  if (/\s/.test(root)) return 'its path holds blanks, which xfs_quota commands cannot take';
  const mount = await mountContaining(root);
  if (mount.fstype !== 'xfs') return `its filesystem (${mount.point}) is ${mount.fstype}, not XFS with project quotas`;
  // pqnoenforce counts without refusing anything: no use as a limit.
  if (!mount.options.includes('prjquota')) return `the XFS at ${mount.point} is mounted without project quotas: mount it with -o prjquota (a remount cannot turn them on)`;
  return undefined;
}

/**
 * A project of its own for one build: `dirs`, empty and fresh, get the project and the
 * inherit flag, so everything made below them afterwards (files, links, devices: the
 * kernel sets the project at creation) is counted in the project, and the rename of a
 * file of another project into them is refused (EXDEV), as XFS does for every project
 * directory.
 */
export class ProjectQuota implements DiskQuota {
  private hardBytes = 0;

  private constructor(
    private readonly mountPoint: string,
    readonly id: number,
  ) {}

  static async start(...dirs: readonly string[]): Promise<ProjectQuota> {
    const { point } = await mountContaining(dirs[0]!);
    // Random, not counted: processes sharing the store pick theirs without talking. Above
    // the IDs people give by hand in /etc/projid; 2^31 possible, so a clash is not a concern.
    const quota = new ProjectQuota(point, randomInt(2 ** 20, 2 ** 31 - 1));
    await quota.run(`project -s ${dirs.map((dir) => `-p ${dir}`).join(' ')} ${quota.id}`);
    return quota;
  }

  /** Holds the project to `bytes` more than it uses now (a copy into it counts as used). */
  async limit(bytes: number): Promise<void> {
    this.hardBytes = (await this.usedBytes()) + bytes;
    await this.run(`limit -p bhard=${Math.ceil(this.hardBytes / 1024)}k ${this.id}`);
  }

  async reached(): Promise<boolean> {
    return this.hardBytes > 0 && nearLimit(this.hardBytes - (await this.usedBytes()), this.hardBytes);
  }

  /** No limit left on the project; its files (a published result's) stay in it, uncounted against anything. */
  async release(): Promise<void> {
    await this.run(`limit -p bhard=0 ${this.id}`);
  }

  /** `quota -v` prints the project's line even when it is empty: `DEVICE BLOCKS QUOTA LIMIT ...`, in KiB. */
  private async usedBytes(): Promise<number> {
    const out = await this.run(`quota -p -v -N -n -b ${this.id}`);
    const kib = Number(out.trim().split(/\s+/)[1]);
    if (!Number.isFinite(kib)) throw new Error(`cannot read the usage of XFS project ${this.id} on ${this.mountPoint}: xfs_quota printed ${JSON.stringify(out)}`);
    return kib * 1024;
  }

  private async run(command: string): Promise<string> {
    const { execa } = await import('execa');
    return (await execa('xfs_quota', ['-x', '-c', command, this.mountPoint])).stdout;
  }
}
