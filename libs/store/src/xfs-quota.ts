import { randomInt } from 'node:crypto';
import { nearLimit, type DiskQuota } from './disk-limit.js';
import { mountContaining } from './mount.js';

// Every `xfs_quota` command the stores run: XFS project quotas, one project per build.
// Not yet run against a real XFS with quotas: the development machine's kernel has no
// quota support at all (no CONFIG_QUOTA), so the store tests reach only the refusal, and
// these commands are checked against a recording shim (test/xfs-quota.test.ts).

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
  if (!mount.options.includes('prjquota'))
    return `the XFS at ${mount.point} is mounted without project quotas: mount it with -o prjquota (a remount cannot turn them on)`;
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
  /** The project's hard limit once `limit` set it; 0 before. */
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
    const hardKiB = Math.ceil(((await this.usage()).usedBytes + bytes) / 1024);
    await this.run(`limit -p bhard=${hardKiB}k ${this.id}`);
    // xfs_quota reports some failures on stderr only, exiting 0: read the limit back.
    const { hardBytes } = await this.usage();
    if (hardBytes !== hardKiB * 1024)
      throw new Error(`xfs_quota did not set the limit of XFS project ${this.id} on ${this.mountPoint} (${hardKiB} KiB; it reads ${hardBytes / 1024} KiB)`);
    this.hardBytes = hardBytes;
  }

  async reached(): Promise<boolean> {
    return this.hardBytes > 0 && nearLimit(this.hardBytes - (await this.usage()).usedBytes, this.hardBytes);
  }

  /** No limit left on the project; its files (a published result's) stay in it, uncounted against anything. */
  async release(): Promise<void> {
    await this.run(`limit -p bhard=0 ${this.id}`);
  }

  /**
   * `quota -v -N`: `DEVICE BLOCKS SOFT HARD WARNS TIMER MOUNTPOINT`, sizes in KiB (a long
   * device name puts the rest on the next line); nothing when the project has no quota
   * record yet.
   */
  private async usage(): Promise<{ usedBytes: number; hardBytes: number }> {
    const out = await this.run(`quota -p -v -N -n -b ${this.id}`);
    if (out.trim() === '') return { usedBytes: 0, hardBytes: 0 };
    const fields = out.trim().split(/\s+/);
    const [used, hard] = [Number(fields[1]), Number(fields[3])];
    if (!Number.isFinite(used) || !Number.isFinite(hard))
      throw new Error(`cannot read the usage of XFS project ${this.id} on ${this.mountPoint}: xfs_quota printed ${JSON.stringify(out)}`);
    return { usedBytes: used * 1024, hardBytes: hard * 1024 };
  }

  private async run(command: string): Promise<string> {
    const { execa } = await import('execa');
    return (await execa('xfs_quota', ['-x', '-c', command, this.mountPoint])).stdout;
  }
}
