import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { errorCode } from './errno.js';

// Every `zfs` and `zpool` command the ZFS store runs.

/** Where the `zfs` and `zpool` executables are (names are looked up on PATH). */
export interface ZfsCommands {
  readonly zfs?: string;
  readonly zpool?: string;
}

/** How long a destroy or rename refused as busy is tried again (see zfsRunWhileBusy). */
const BUSY_WAIT_MS = 5_000;

/** Subcommands sent again when the daemon's socket broke under them (see runNow). */
const REPEATABLE = new Set(['list', 'get', 'mount', 'unmount', 'status']);
const SIGPIPE_ATTEMPTS = 4;

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

/**
 * zfs-fuse (ZFS in a FUSE daemon: Linux without the kernel's /dev/zfs) hangs for good when
 * one command destroys a dataset while another mounts one, and every later command on the
 * machine with it (seen under the engine's stress test). There a process runs its
 * commands one at a time; kernel ZFS takes them concurrently.
 */
const ONE_AT_A_TIME = process.platform === 'linux' && !existsSync('/dev/zfs');
/** The tail of this process's queue of commands, when they run one at a time. */
let queue: Promise<unknown> = Promise.resolve();
let running = 0;

/** ZFS's own words for the failures the store handles. */
const missing = (e: unknown) => e instanceof ZfsCommandError && /does not exist/.test(e.stderr);
const existing = (e: unknown) => e instanceof ZfsCommandError && /already exists/.test(e.stderr);
const alreadyMounted = (e: unknown) => e instanceof ZfsCommandError && /already mounted/.test(e.stderr);
const notMounted = (e: unknown) => e instanceof ZfsCommandError && /not currently mounted/.test(e.stderr);
export const hasDependentClones = (e: unknown) => e instanceof ZfsCommandError && /dependent clones/.test(e.stderr);
/** Linux says "pool or dataset is busy", FreeBSD "Device busy": something has a file open there. */
export const isBusyError = (e: unknown) => e instanceof ZfsCommandError && /busy/i.test(e.stderr);
/** Pools of an old version (zfs-fuse's) have no `clones` property. */
const noClonesProperty = (e: unknown) => e instanceof ZfsCommandError && /invalid property 'clones'/.test(e.stderr);
export { existing as isExistsError, missing as isMissingError };

interface Files {
  readonly stdin?: string;
  readonly stdout?: string;
}

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
    await this.zfsRunWhileBusy(['rename', from, checkName(to)], from, to);
  }

  /** Writes the full stream of `snapshot` (`zfs send`) to `file`. */
  async send(snapshot: string, file: string): Promise<void> {
    await this.run(this.zfs, ['send', snapshot], { stdout: file });
  }

  /** Creates `dataset` with the snapshot of the stream in `file` (`zfs receive`). */
  async receive(dataset: string, file: string): Promise<void> {
    await this.run(this.zfs, ['receive', checkName(dataset)], { stdin: file });
  }

  /** The snapshots of `dataset` itself, oldest first. */
  async snapshots(dataset: string): Promise<string[]> {
    const out = await this.zfsRun(['list', '-H', '-o', 'name', '-t', 'snapshot', '-s', 'createtxg', '-r', dataset]);
    return lines(out).filter((name) => name.startsWith(`${dataset}@`));
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
      await this.zfsRunWhileBusy(['destroy', ...flags, target], target);
    } catch (e) {
      if (!missing(e)) throw e;
    }
  }

  /** Mounts a dataset at its mountpoint; one already mounted is fine. False when there is no such dataset. */
  async mount(dataset: string): Promise<boolean> {
    const deadline = Date.now() + BUSY_WAIT_MS;
    for (let delay = 10; ; delay = Math.min(delay * 2, 250)) {
      try {
        await this.zfsRun(['mount', dataset]);
        return true;
      } catch (e) {
        if (alreadyMounted(e)) return true;
        if (missing(e)) return false;
        // Another process is mounting it (its `zfs rename` into place does): mounted is what we want.
        if (!isBusyError(e) || Date.now() + delay > deadline) throw e;
        if ((await this.property(dataset, 'mounted').catch(() => undefined)) === 'yes') return true;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async property(dataset: string, name: string): Promise<string> {
    return (await this.zfsRun(['get', '-H', '-o', 'value', name, dataset])).trim();
  }

  /** Unmounts a dataset (unmount what is mounted beneath it first); one not mounted is fine. */
  async unmount(dataset: string): Promise<void> {
    try {
      await this.zfsRun(['unmount', dataset]);
    } catch (e) {
      if (!notMounted(e)) throw e;
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
      if (noClonesProperty(e)) return this.clonesByOrigin(snapshot);
      throw e;
    }
  }

  /** `clones` for pools older than the property (zfs-fuse's): every filesystem of the pool whose origin is `snapshot`. */
  private async clonesByOrigin(snapshot: string): Promise<string[] | undefined> {
    if (!(await this.exists(snapshot))) return undefined;
    const pool = snapshot.slice(0, snapshot.search(/[/@]/));
    const out = await this.zfsRun(['list', '-H', '-o', 'name,origin', '-t', 'filesystem', '-r', pool]);
    return lines(out).flatMap((line) => {
      const [name, origin] = line.split('\t');
      return origin === snapshot ? [name!] : [];
    });
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

  /**
   * For commands that unmount `dataset` first. zfs-fuse lets go of a filesystem only once
   * the kernel has forgotten every file looked up there, which may be never while it
   * stays mounted; its `zfs rename` remounts at once, so a retry alone meets the same
   * refusal; and it renames a dataset only while the clones of its snapshots are
   * unmounted. So a refusal as busy unmounts the dataset, what is beneath it and its
   * clones (any of them not in use), tries again (the daemon takes a moment to see an
   * unmount) and remounts them. A file really held open there still fails, after
   * BUSY_WAIT_MS. OpenZFS on Linux and FreeBSD refuse only for open files.
   */
  private async zfsRunWhileBusy(args: readonly string[], dataset: string, renamedTo?: string): Promise<void> {
    const deadline = Date.now() + BUSY_WAIT_MS;
    const unmounted = new Set<string>();
    for (let delay = 10, retried = false; ; delay = Math.min(delay * 2, 250), retried = true) {
      try {
        await this.zfsRun(args);
        break;
      } catch (e) {
        // A rename zfs-fuse reported as failed (busy, or remounting) may have been done all the
        // same: then its repeat finds no `from`, and `to` is there.
        if (retried && renamedTo !== undefined && missing(e) && (await this.exists(renamedTo)) && !(await this.exists(dataset))) break;
        const raced = e instanceof ZfsCommandError && /: not mounted/.test(e.stderr);
        if (!(isBusyError(e) || raced) || Date.now() + delay > deadline) throw e;
        if (isBusyError(e)) for (const name of await this.unmountForRename(dataset)) unmounted.add(name);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
    if (renamedTo === undefined) return;
    for (const name of [...unmounted].reverse()) {
      const now = name === dataset || name.startsWith(`${dataset}/`) ? renamedTo + name.slice(dataset.length) : name;
      await this.mount(now).catch(() => undefined);
    }
  }

  /** Unmounts the clones of `dataset`'s snapshots, then it and what is beneath it, deepest first, skipping busy ones; returns those it unmounted. */
  private async unmountForRename(dataset: string): Promise<string[]> {
    if (dataset.includes('@')) return [];
    const pool = dataset.split('/')[0]!;
    const out = await this.zfsRun(['list', '-H', '-o', 'name,origin,mounted', '-t', 'filesystem', '-r', pool]).catch(() => '');
    const rows = lines(out).map((line) => line.split('\t') as [string, string, string]);
    const mounted = (keep: (name: string, origin: string) => boolean) =>
      rows.filter(([name, origin, m]) => m === 'yes' && keep(name, origin)).map(([name]) => name);
    const clones = mounted((_, origin) => origin.startsWith(`${dataset}@`) || origin.startsWith(`${dataset}/`));
    const tree = mounted((name) => name === dataset || name.startsWith(`${dataset}/`)).reverse();
    const unmounted: string[] = [];
    for (const name of [...clones, ...tree]) {
      try {
        await this.unmount(name);
        unmounted.push(name);
      } catch (e) {
        if (!isBusyError(e)) throw e;
      }
    }
    return unmounted;
  }

  /** `files`: the command's stdin from a file, or its stdout to one (a stream, not text). */
  private run(file: string, args: readonly string[], files: Files = {}): Promise<string> {
    if (!ONE_AT_A_TIME) return this.runNow(file, args, files);
    const result = queue.then(async () => {
      running += 1;
      try {
        return await this.runNow(file, args, files);
      } finally {
        running -= 1;
      }
    });
    queue = result.catch(() => undefined);
    return result;
  }

  private async runNow(file: string, args: readonly string[], files: Files): Promise<string> {
    const { execa } = await import('execa');
    const stdin = files.stdin === undefined ? 'ignore' : { file: files.stdin };
    for (let attempt = 1; ; attempt++) {
      const result = await execa(file, args, { reject: false, stdin, ...(files.stdout === undefined ? {} : { stdout: { file: files.stdout } }) });
      if (errorCode(result.cause) === 'ENOENT') throw noSuchCommand(file, result.cause);
      // zfs-fuse's daemon now and then drops a client's socket while two processes use it
      // (seen as `zfs mount` killed by SIGPIPE in the shared-store test); a command that
      // changes nothing, or whose repeat is recognised (mount, unmount), is sent again.
      if (result.signal === 'SIGPIPE' && attempt < SIGPIPE_ATTEMPTS && REPEATABLE.has(args[0] ?? '')) {
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
        continue;
      }
      if (result.failed) throw new ZfsCommandError([file, ...args], String(result.stderr || result.message), { cause: result.cause });
      return String(result.stdout ?? '');
    }
  }

  private runSync(file: string, args: readonly string[]): string {
    // It cannot wait for the queue: "busy" has the caller try again later (zfs-mounts.ts).
    if (running > 0) throw new ZfsCommandError([file, ...args], 'busy: another zfs command of this process is running (zfs-fuse takes one at a time)');
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
  if (Buffer.byteLength(dataset) > MAX_NAME)
    throw new Error(`ZFS dataset name ${dataset} is too long (${Buffer.byteLength(dataset)} bytes, ZFS takes at most ${MAX_NAME})`);
  return dataset;
}
