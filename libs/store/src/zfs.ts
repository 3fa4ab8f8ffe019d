import { spawnSync } from 'node:child_process';
import { errorCode } from './errno.js';

// Every `zfs` and `zpool` command the ZFS store runs.

/** Where the `zfs` and `zpool` executables are (names are looked up on PATH). */
export interface ZfsCommands {
  readonly zfs?: string;
  readonly zpool?: string;
}

/** ZFS refuses dataset names of 256 bytes or more (ZFS_MAX_DATASET_NAME_LEN). */
const MAX_NAME = 255;

/** A `zfs` or `zpool` command that ran and failed; `stderr` holds ZFS's reason. */
export class ZfsCommandError extends Error {
  override readonly name = 'ZfsCommandError';

  constructor(
    readonly argv: readonly string[],
    readonly stderr: string,
    options?: ErrorOptions,
  ) {
    super(`${argv.join(' ')} failed: ${stderr.trim() || 'no message'}`, options);
  }
}

/** ZFS's own words for the failures the store handles. */
const missing = (e: unknown) => e instanceof ZfsCommandError && /does not exist/.test(e.stderr);
const existing = (e: unknown) => e instanceof ZfsCommandError && /already exists/.test(e.stderr);
const alreadyMounted = (e: unknown) => e instanceof ZfsCommandError && /already mounted/.test(e.stderr);
const notMounted = (e: unknown) => e instanceof ZfsCommandError && /not currently mounted/.test(e.stderr);
export const hasDependentClones = (e: unknown) => e instanceof ZfsCommandError && /dependent clones/.test(e.stderr);
/** Linux says "pool or dataset is busy", FreeBSD "Device busy": something has a file open there. */
export const isBusyError = (e: unknown) => e instanceof ZfsCommandError && /busy/i.test(e.stderr);
export { existing as isExistsError, missing as isMissingError };

export interface DatasetSpace {
  readonly used: number;
  readonly available: number;
}

export class Zfs {
  private readonly zfs: string;
  private readonly zpool: string;

  constructor(commands: ZfsCommands = {}) {
    this.zfs = commands.zfs ?? 'zfs';
    this.zpool = commands.zpool ?? 'zpool';
  }

  /** The pool's health (ONLINE, DEGRADED...), or undefined when there is no such pool. */
  async poolHealth(pool: string): Promise<string | undefined> {
    try {
      return (await this.run(this.zpool, ['list', '-H', '-o', 'health', pool])).trim();
    } catch (e) {
      if (e instanceof ZfsCommandError && /no such pool/.test(e.stderr)) return undefined;
      throw e;
    }
  }

  async exists(dataset: string): Promise<boolean> {
    try {
      await this.zfsRun(['list', '-H', '-o', 'name', dataset]);
      return true;
    } catch (e) {
      if (missing(e)) return false;
      throw e;
    }
  }

  /** `dataset`'s mountpoint, or undefined when there is no such dataset. */
  async mountpoint(dataset: string): Promise<string | undefined> {
    try {
      return (await this.zfsRun(['get', '-H', '-o', 'value', 'mountpoint', dataset])).trim();
    } catch (e) {
      if (missing(e)) return undefined;
      throw e;
    }
  }

  /** The datasets directly under each of `parents` (not the parents themselves). */
  async children(parents: readonly string[]): Promise<string[]> {
    const out = await this.zfsRun(['list', '-H', '-o', 'name', '-t', 'filesystem', '-d', '1', ...parents]);
    return lines(out).filter((name) => !parents.includes(name));
  }

  async create(dataset: string, options: { readonly mountpoint?: string; readonly parents?: boolean } = {}): Promise<void> {
    const args = ['create'];
    if (options.parents) args.push('-p');
    if (options.mountpoint !== undefined) args.push('-o', `mountpoint=${options.mountpoint}`);
    await this.zfsRun([...args, checkName(dataset)]);
  }

  async clone(snapshot: string, dataset: string): Promise<void> {
    await this.zfsRun(['clone', snapshot, checkName(dataset)]);
  }

  /** Snapshots `dataset` (and with `recursive` its descendants, atomically) as `dataset@name`. */
  async snapshot(dataset: string, name: string, options: { readonly recursive?: boolean } = {}): Promise<void> {
    await this.zfsRun(['snapshot', ...(options.recursive ? ['-r'] : []), `${dataset}@${name}`]);
  }

  /** Renames a dataset (with its descendants and snapshots) or a snapshot; fails if `to` exists. */
  async rename(from: string, to: string): Promise<void> {
    await this.zfsRun(['rename', from, checkName(to)]);
  }

  /** Makes a clone independent of its origin: the origin's snapshots up to the clone's move to it. */
  async promote(clone: string): Promise<void> {
    await this.zfsRun(['promote', clone]);
  }

  /**
   * Destroys a dataset or snapshot; `recursive` takes its descendants and snapshots too
   * (never clones of them: ZFS then refuses, see hasDependentClones). `defer` (snapshots
   * only) destroys it once its last clone is gone. Destroying what is not there is not an
   * error.
   */
  async destroy(target: string, options: { readonly recursive?: boolean; readonly defer?: boolean } = {}): Promise<void> {
    const flags = [...(options.recursive ? ['-r'] : []), ...(options.defer ? ['-d'] : [])];
    try {
      await this.zfsRun(['destroy', ...flags, target]);
    } catch (e) {
      if (!missing(e)) throw e;
    }
  }

  /** Mounts a dataset at its mountpoint; one already mounted is fine. */
  async mount(dataset: string): Promise<void> {
    try {
      await this.zfsRun(['mount', dataset]);
    } catch (e) {
      if (!alreadyMounted(e)) throw e;
    }
  }

  /** Unmounts a dataset (unmount what is mounted beneath it first); one not mounted is fine. */
  async unmount(dataset: string): Promise<void> {
    try {
      await this.zfsRun(['unmount', dataset]);
    } catch (e) {
      if (!notMounted(e)) throw e;
    }
  }

  /**
   * `mount` for callers that cannot wait (ZfsStore.resultDir, whose contract is
   * synchronous): blocks until `zfs mount` is done. False when there is no such dataset.
   */
  mountSync(dataset: string): boolean {
    try {
      this.runSync(this.zfs, ['mount', dataset]);
      return true;
    } catch (e) {
      if (alreadyMounted(e)) return true;
      if (missing(e)) return false;
      throw e;
    }
  }

  /** `unmount` for timers and exit handlers, where nothing else may run in between. */
  unmountSync(dataset: string): void {
    try {
      this.runSync(this.zfs, ['unmount', dataset]);
    } catch (e) {
      if (!notMounted(e) && !missing(e)) throw e;
    }
  }

  /** The mounted ZFS filesystems (`zfs mount` without operands): one name per line, then its mountpoint. */
  async mounted(): Promise<string[]> {
    return lines(await this.zfsRun(['mount'])).map((line) => line.split(/\s+/)[0]!);
  }

  /** Sets `property=value` on each of `datasets`, in one command. */
  async set(property: string, value: string, datasets: readonly string[]): Promise<void> {
    await this.zfsRun(['set', `${property}=${value}`, ...datasets]);
  }

  /** The datasets cloned from `snapshot`, or undefined when there is no such snapshot. */
  async clones(snapshot: string): Promise<string[] | undefined> {
    try {
      const out = (await this.zfsRun(['get', '-H', '-o', 'value', 'clones', snapshot])).trim();
      return out === '' || out === '-' ? [] : out.split(',');
    } catch (e) {
      if (missing(e)) return undefined;
      throw e;
    }
  }

  /** The snapshot's GUID: a new one for every snapshot ever taken. Undefined if there is none. */
  async guid(snapshot: string): Promise<string | undefined> {
    try {
      return (await this.zfsRun(['get', '-Hp', '-o', 'value', 'guid', snapshot])).trim();
    } catch (e) {
      if (missing(e)) return undefined;
      throw e;
    }
  }

  /** Bytes used by `dataset` and its descendants, and bytes still available to it. */
  async space(dataset: string): Promise<DatasetSpace> {
    const out = await this.zfsRun(['get', '-Hp', '-o', 'value', 'used,available', dataset]);
    const [used, available] = lines(out).map(Number);
    if (used === undefined || available === undefined || !Number.isFinite(used) || !Number.isFinite(available)) {
      throw new Error(`cannot read the space of ZFS dataset ${dataset}: ${this.zfs} get printed ${JSON.stringify(out)}`);
    }
    return { used, available };
  }

  private zfsRun(args: readonly string[]): Promise<string> {
    return this.run(this.zfs, args);
  }

  private async run(file: string, args: readonly string[]): Promise<string> {
    const { execa } = await import('execa');
    const result = await execa(file, args, { reject: false, stdin: 'ignore' });
    if (errorCode(result.cause) === 'ENOENT') throw noSuchCommand(file, result.cause);
    if (result.failed) throw new ZfsCommandError([file, ...args], String(result.stderr || result.message), { cause: result.cause });
    return String(result.stdout);
  }

  private runSync(file: string, args: readonly string[]): string {
    const result = spawnSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (errorCode(result.error) === 'ENOENT') throw noSuchCommand(file, result.error);
    if (result.error || result.status !== 0) {
      throw new ZfsCommandError([file, ...args], result.stderr || String(result.error?.message ?? `exit status ${result.status}`), { cause: result.error });
    }
    return result.stdout;
  }
}

function noSuchCommand(file: string, cause: unknown): Error {
  return new Error(`cannot run ${JSON.stringify(file)}: no such command; the ZFS store needs ZFS's tools (zfsutils-linux on Debian and Ubuntu)`, { cause });
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

function checkName(dataset: string): string {
  if (Buffer.byteLength(dataset) > MAX_NAME) throw new Error(`ZFS dataset name ${dataset} is too long (${Buffer.byteLength(dataset)} bytes, ZFS takes at most ${MAX_NAME})`);
  return dataset;
}
