import { chmod, chown, lstat, mkdir, readdir, rmdir, symlink, unlink } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import { MACOS_COMMANDS, Macos, type MacosCommands, type Result } from './macos.js';
import { missingMountpoints, removeMountpoints } from './mountpoints.js';
import { UnsupportedConfigError } from './oci-config.js';
import { runWatchingLimit } from './limit-watch.js';
import { CancelledError, type RunConfig, type RunOptions, type Sandbox } from './sandbox.js';
import { capLimits, type StepLimits } from './step-limits.js';

export interface MacosSandboxOptions {
  /** The build slot's user ID, e.g. 1000 + slot: one sandbox, one slot, one user. */
  readonly uid: number;
  /** Primary group of the user created in init(). Default 20 (staff). */
  readonly gid?: number;
  /** The user's name. Default `mac<uid>`, OBuilder's naming. */
  readonly user?: string;
  /** Parent of the user's home, which becomes a link to the snapshot's `home`. Default /Users. */
  readonly usersDir?: string;
  /** The Homebrew prefix, a link to the snapshot's `brew`. Default /opt/homebrew on arm64, /usr/local on x86_64. */
  readonly brewPrefix?: string;
  /** Node's process.arch of the host, for the default prefix. Default process.arch. */
  readonly arch?: string;
  /** A sandbox-exec(1) profile that wraps every step, when set. */
  readonly sandboxProfile?: string;
  readonly commands?: Partial<MacosCommands>;
  /**
   * Every step's limits, and the most a job may ask for: pids only (see MacosSandbox).
   * The disk limit is the store's (the zfs store's quota).
   */
  readonly limits?: StepLimits;
}

/** Where the home directory and the Homebrew prefix live in a step's root filesystem. */
export const MACOS_ROOTFS_HOME = 'home';
export const MACOS_ROOTFS_BREW = 'brew';

interface CacheLink {
  readonly src: string;
  /** Host path of the link, inside the root filesystem. */
  readonly at: string;
}

/**
 * Runs each step on the macOS host itself as the build slot's own user, after OBuilder's
 * sandbox.macos.ml. A step's root filesystem holds `home` (the user's home directory) and
 * `brew` (the Homebrew prefix); for the step's duration:
 *
 *   1. `sudo ln -sfh ROOTFS/home /Users/USER` and `sudo ln -sfh ROOTFS/brew PREFIX`.
 *      OBuilder sets the mountpoints of ZFS datasets instead; macOS has no bind mount
 *      (no nullfs, and bindfs needs a FUSE kext), so the snapshot is reached through
 *      links that are swapped per step. Tools see the link paths; anything that resolves
 *      real paths sees the snapshot's, which Homebrew tolerates for its prefix. The prefix
 *      is machine-wide: run one macOS sandbox (one slot) per machine, or give each its own
 *      prefix. Within one sandbox, runs are serialised.
 *   2. caches (`(cache (NAME (target P)))`): P must be inside the home directory or the
 *      prefix; a link to the cache is made at the matching place in the snapshot (an empty
 *      directory there is moved aside and put back afterwards).
 *   3. `sudo -n -u USER -i -- env -i K=V... HOME=... USER=... LOGNAME=... [sandbox-exec -f
 *      PROFILE] sh -c 'cd CWD; exec ARGV'`: a clean login environment.
 *   4. `sudo pkill -9 -u USER` (stragglers; also what cancelling does), cache links
 *      removed in reverse order, then the prefix and home links.
 *
 * Not isolated, and said so rather than faked: macOS cannot give one process tree a
 * network of its own, so a step without a `network` field runs on the host's network,
 * as `(network host)` does (a sandbox profile may deny network access); other network
 * names are rejected. Every Unix user of a spec runs as the slot user (macOS has no user
 * namespaces, and Homebrew refuses root). Secrets are rejected: there is no mount to keep
 * their values out of the snapshot. Windows users are rejected.
 *
 * Limits are what launchd can set for a job, resource limits (setrlimit), and of those
 * only what macOS enforces: a pids limit is `ulimit -u N` (RLIMIT_NPROC, launchd's
 * NumberOfProcesses) in the step's shell, counted over the slot user's processes, which
 * are the step's; while the step runs its processes are counted (`pgrep -u USER`), and
 * one at the limit is stopped (pkill) and fails with the pids reason. Processes only,
 * not threads. Memory and CPU limits are refused: macOS enforces no launchd or rlimit
 * memory limit (ResidentSetSize, RLIMIT_AS are accepted and ignored), and rlimits have
 * no CPU share, only CPU seconds.
 */
export class MacosSandbox implements Sandbox {
  readonly kind = 'macos';
  private readonly macos: Macos;
  private readonly user: string;
  private readonly gid: number;
  /** The slot user's home directory, a link to the step's `home` while it runs. */
  readonly home: string;
  /** The Homebrew prefix, a link to the step's `brew` while it runs. */
  readonly prefix: string;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: MacosSandboxOptions) {
    this.macos = new Macos({ ...MACOS_COMMANDS, ...options.commands });
    this.user = options.user ?? `mac${options.uid}`;
    this.gid = options.gid ?? 20;
    this.home = posix.join(options.usersDir ?? '/Users', this.user);
    this.prefix = options.brewPrefix ?? ((options.arch ?? process.arch) === 'arm64' ? '/opt/homebrew' : '/usr/local');
    const unenforced = unenforcedLimits(options.limits);
    if (unenforced) throw new Error(`the macOS sandbox cannot hold steps to ${unenforced}; set only pids (RLIMIT_NPROC) for a macOS worker`);
  }

  async init(): Promise<void> {
    const uid = await this.macos.uidOf(this.user);
    if (uid === undefined) {
      check(await this.macos.createUser(this.user, this.options.uid, this.gid, this.home), `create the user ${this.user}`);
    } else if (uid !== this.options.uid) {
      throw new Error(`the macOS user ${this.user} has uid ${uid}, not ${this.options.uid}: pick another user name or uid`);
    }
    check(await this.macos.killUser(this.user), `kill the processes of ${this.user}`);
    for (const path of [this.prefix, this.home]) {
      if (await this.isLink(path)) check(await this.macos.unlink(path), `remove the link ${path}`);
    }
  }

  run(config: RunConfig, rootfs: string, options: RunOptions): Promise<void> {
    const result = this.queue.then(() => this.runNow(config, resolve(rootfs), options));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async runNow(config: RunConfig, rootfs: string, options: RunOptions): Promise<void> {
    if (options.signal?.aborted) throw new CancelledError();
    if (config.user.kind !== 'unix') {
      throw new UnsupportedConfigError(`the macOS sandbox runs Unix users only; the Windows user "${config.user.name}" needs the docker sandbox`);
    }
    if (config.network.length > 1 || (config.network.length === 1 && config.network[0] !== 'host')) {
      throw new UnsupportedConfigError(
        `the macOS sandbox only supports (network host) or no network (which is not isolated on macOS); ${config.network.filter((n) => n !== 'host').join(' ')} needs a backend with named networks`,
      );
    }
    if (config.secrets.length > 0) {
      throw new UnsupportedConfigError(
        `the macOS sandbox does not support secrets (${config.secrets.map((s) => s.target).join(', ')}): it has no mount to keep their values out of the snapshot`,
      );
    }
    const limits = capLimits(options.limits, this.options.limits);
    const unenforced = unenforcedLimits(limits);
    if (unenforced) throw new UnsupportedConfigError(`the macOS sandbox cannot hold a step to ${unenforced}; it enforces a pids limit only`);
    const caches = config.mounts.map((m) => ({ src: m.src, at: this.inRootfs(rootfs, m.dst) }));
    for (const path of [this.home, this.prefix]) {
      if ((await exists(path)) && !(await this.isLink(path))) {
        throw new Error(`${path} is not a link: move it away, the macOS sandbox links it to each step's snapshot`);
      }
    }
    let killed: Promise<Result> | undefined;
    const kill = () => (killed ??= this.macos.killUser(this.user));
    const linked: string[] = [];
    const links: CacheLink[] = [];
    const emptied: { path: string; mode: number; uid: number; gid: number }[] = [];
    const created: string[] = [];
    let started = false;
    try {
      check(await this.macos.link(join(rootfs, MACOS_ROOTFS_HOME), this.home), `link ${this.home}`);
      linked.push(this.home);
      check(await this.macos.link(join(rootfs, MACOS_ROOTFS_BREW), this.prefix), `link ${this.prefix}`);
      linked.push(this.prefix);
      for (const cache of caches) {
        await this.noLinksOnTheWay(rootfs, cache.at);
        created.push(...(await missingMountpoints('/', [posix.dirname(cache.at)])));
        await mkdir(posix.dirname(cache.at), { recursive: true });
        const stat = await lstat(cache.at).catch(() => undefined);
        if (stat?.isDirectory() && (await readdir(cache.at)).length === 0) {
          await rmdir(cache.at);
          emptied.push({ path: cache.at, mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid });
        } else if (stat?.isSymbolicLink()) {
          await unlink(cache.at);
        } else if (stat) {
          throw new UnsupportedConfigError(`cannot put the cache at ${cache.at}: something that is not an empty directory is there`);
        }
        await symlink(cache.src, cache.at);
        links.push(cache);
      }
      if (options.signal?.aborted) throw new CancelledError();
      started = true;
      const pids = limits?.pids;
      const runAs = (runOptions: RunOptions) =>
        this.macos.runAs(
          {
            user: this.user,
            argv: config.argv,
            cwd: config.cwd,
            profile: this.options.sandboxProfile,
            env: [...config.env, ['HOME', this.home], ['USER', this.user], ['LOGNAME', this.user]],
            ...(pids === undefined ? {} : { maxProcesses: pids }),
          },
          runOptions,
          async () => void (await kill()),
        );
      const atLimit = async () => (await this.macos.processCount(this.user)) >= pids!;
      await (pids === undefined ? runAs(options) : runWatchingLimit(`pids limit ${pids} reached`, atLimit, options, runAs));
    } finally {
      await this.cleanUp(started ? kill : undefined, links, emptied, created, linked);
    }
  }

  private async cleanUp(
    kill: (() => Promise<Result>) | undefined,
    links: readonly CacheLink[],
    emptied: readonly { path: string; mode: number; uid: number; gid: number }[],
    created: readonly string[],
    linked: readonly string[],
  ): Promise<void> {
    const failures: string[] = [];
    if (kill) {
      const killed = await kill();
      if (killed.exitCode !== 0) failures.push(`pkill -u ${this.user}: ${killed.stderr.trim()}`);
    }
    for (const link of [...links].reverse()) {
      if ((await lstat(link.at).catch(() => undefined))?.isSymbolicLink()) await unlink(link.at);
    }
    // Back as it was, so that the snapshot does not change where the step did not.
    for (const dir of emptied) {
      await mkdir(dir.path, { recursive: true });
      await chmod(dir.path, dir.mode);
      await chown(dir.path, dir.uid, dir.gid);
    }
    await removeMountpoints(created);
    for (const path of [...linked].reverse()) {
      const { exitCode, stderr } = await this.macos.unlink(path);
      if (exitCode !== 0) failures.push(`rm ${path}: ${stderr.trim()}`);
    }
    if (failures.length > 0) throw new Error(`the macOS sandbox could not clean up after a step (init() will retry): ${failures.join('; ')}`);
  }

  /** The host path, inside the root filesystem, of a cache target in the home directory or the prefix. */
  private inRootfs(rootfs: string, target: string): string {
    for (const [base, dir] of [
      [this.home, MACOS_ROOTFS_HOME],
      [this.prefix, MACOS_ROOTFS_BREW],
    ] as const) {
      const rel = posix.relative(base, posix.normalize(target));
      if (target.startsWith('/') && rel !== '' && !rel.startsWith('..') && !posix.isAbsolute(rel)) return join(rootfs, dir, rel);
    }
    throw new UnsupportedConfigError(`the macOS sandbox can only put caches inside ${this.home} or ${this.prefix}, not at ${target}`);
  }

  /** The worker makes cache links with its own rights: a link in the snapshot must not send them elsewhere. */
  private async noLinksOnTheWay(rootfs: string, at: string): Promise<void> {
    const parts = posix.relative(rootfs, posix.dirname(at)).split('/');
    for (let n = 1; n <= parts.length; n++) {
      const path = join(rootfs, ...parts.slice(0, n));
      if ((await lstat(path).catch(() => undefined))?.isSymbolicLink()) {
        throw new UnsupportedConfigError(`cannot put a cache at ${at}: ${path} is a symbolic link`);
      }
    }
  }

  private async isLink(path: string): Promise<boolean> {
    return (await lstat(path).catch(() => undefined))?.isSymbolicLink() ?? false;
  }
}

/** The limits of `limits` macOS would not enforce, said as an error says them; undefined when none. */
function unenforcedLimits(limits: StepLimits | undefined): string | undefined {
  const names = [
    ...(limits?.memoryBytes === undefined ? [] : ['a memory limit (macOS enforces no launchd or rlimit memory limit)']),
    ...(limits?.cpus === undefined ? [] : ['a CPU limit (rlimits count CPU seconds, not a share)']),
  ];
  return names.length === 0 ? undefined : names.join(' or ');
}

function check(result: Result, what: string): void {
  if (result.exitCode !== 0) throw new Error(`the macOS sandbox could not ${what} (exit ${result.exitCode}): ${result.stderr.trim()}`);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
