import { randomBytes } from 'node:crypto';
import { chown, mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import { FREEBSD_COMMANDS, Jail, type JailCommands } from './jail.js';
import { missingMountpoints, removeMountpoints, resolveInRoot as resolveMountTarget } from './mountpoints.js';
import { UnsupportedConfigError } from './oci-config.js';
import { runWatchingLimit } from './limit-watch.js';
import { CancelledError, type RunConfig, type RunOptions, type Sandbox } from './sandbox.js';
import { capLimits, hasLimits, type StepLimits } from './step-limits.js';

export interface JailSandboxOptions {
  /**
   * Where the driver keeps one record per running step (its jail, mounts and created
   * mountpoints) and the step's secret files; `init()` undoes whatever records a crash
   * left there. Outside every root filesystem.
   */
  readonly stateDir: string;
  /** Paths of jail, jexec, jls, mount, umount and rctl; the FreeBSD base system's by default. */
  readonly commands?: Partial<JailCommands>;
  /** Every step's limits, and the most a job may ask for (rctl rules on the step's jail). */
  readonly limits?: StepLimits;
}

/** Only jails with this prefix are ours to remove in init(). */
const PREFIX = 'cairn-';

/** What a step set up, written before it is set up, so that init() can undo it after a crash. */
interface StepRecord {
  readonly jail: string;
  /** Host paths mounted over, in mount order. */
  readonly mounts: readonly string[];
  /** Mountpoints created in the root filesystem (see missingMountpoints). */
  readonly created: readonly string[];
  readonly secretsDir: string;
}

/**
 * Runs each step in a FreeBSD jail of its own, after OBuilder's sandbox.jail.ml:
 *
 *   1. caches: `mount -t nullfs [-o ro] SRC ROOTFS/DST`, in the config's order; secrets:
 *      each value written to a 0400 file in the state dir (owned by the step's user) and
 *      `mount -t nullfs -o ro FILE ROOTFS/TARGET` after the caches, so that a secret inside
 *      a cache directory stays visible. The value never touches the root filesystem;
 *      nullfs mounts of single files need FreeBSD 13.2 / 14 or later.
 *   2. `jail -c name=cairn-ID path=ROOTFS host.hostname=HOST mount.devfs persist` plus
 *      `ip4=inherit ip6=inherit` for `(network host)`, else `vnet` (loopback only);
 *   3. `jexec cairn-ID [chroot -u UID -g GID -G GID /] env -i K=V... sh -c 'cd CWD; exec ARGV'`
 *      (see Jail.jexec for why not `jexec -U`), output streamed; limits are rctl rules on
 *      the jail, and with a pids limit `rctl -u jail:cairn-ID` is read meanwhile: a jail
 *      at its maxproc limit is stopped as on a cancel, and the step fails with the pids
 *      reason (so does one that failed with the jail at the limit);
 *   4. `jail -r cairn-ID` (also what cancelling does: it kills every process of the jail),
 *      `umount` of every mount in reverse order, then the mountpoints that step 1 had to
 *      create are removed, and the secret files.
 *
 * Mount targets are resolved inside the root filesystem first (absolute symlinks and `..`
 * stay in it, as runc does), so that a link in the image cannot aim a mount at the host.
 * Jails are machine-wide: init() removes every `cairn-*` jail, so run one Cairn worker
 * per FreeBSD host. The driver runs as root.
 */
export class JailSandbox implements Sandbox {
  readonly kind = 'jail';
  private readonly stateDir: string;
  private readonly jail: Jail;
  private readonly limits: StepLimits | undefined;

  constructor(options: JailSandboxOptions) {
    this.stateDir = resolve(options.stateDir);
    this.jail = new Jail({ ...FREEBSD_COMMANDS, ...options.commands });
    this.limits = options.limits;
  }

  async init(): Promise<void> {
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    for (const name of await this.jail.list()) {
      if (name.startsWith(PREFIX)) await this.jail.remove(name);
    }
    for (const entry of (await readdir(this.stateDir)).sort()) {
      if (!entry.endsWith('.json')) continue;
      const file = join(this.stateDir, entry);
      const record = JSON.parse(await readFile(file, 'utf8')) as StepRecord;
      // Some of these were never mounted: a crash can come at any point of the set-up.
      for (const path of [...record.mounts].reverse()) await this.jail.unmount(path);
      await removeMountpoints(record.created);
      await rm(record.secretsDir, { recursive: true, force: true });
      await rm(file, { force: true });
    }
  }

  async run(config: RunConfig, rootfs: string, options: RunOptions): Promise<void> {
    if (options.signal?.aborted) throw new CancelledError();
    const user = config.user;
    if (user.kind !== 'unix') {
      throw new UnsupportedConfigError(`the jail sandbox runs Unix users only (uid and gid); the Windows user "${user.name}" needs the docker sandbox`);
    }
    const hostNetwork = networkIsHost(config.network);
    for (const target of [...config.mounts.map((m) => m.dst), ...config.secrets.map((s) => s.target)]) {
      if (!target.startsWith('/')) throw new UnsupportedConfigError(`mount target "${target}" must be an absolute path`);
    }
    const root = resolve(rootfs);
    const id = PREFIX + randomBytes(8).toString('hex');
    const secretsDir = join(this.stateDir, `${id}.secrets`);
    const caches = await Promise.all(config.mounts.map(async (m) => ({ ...m, at: join(root, await resolveInRoot(root, m.dst)) })));
    const secrets = await Promise.all(
      config.secrets.map(async (s, i) => ({
        ...s,
        at: join(root, await resolveInRoot(root, s.target)),
        file: join(secretsDir, `secret-${i}`),
      })),
    );
    const created = await missingMountpoints(root, [...config.mounts.map((m) => m.dst), ...config.secrets.map((s) => s.target)]);
    const record: StepRecord = { jail: id, mounts: [...caches.map((c) => c.at), ...secrets.map((s) => s.at)], created, secretsDir };
    const recordFile = join(this.stateDir, `${id}.json`);
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    await writeFile(recordFile, JSON.stringify(record));

    const mounted: string[] = [];
    let jailCreated = false;
    let limited = false;
    let jailRemoved: Promise<{ exitCode: number; stderr: string }> | undefined;
    const removeJail = () => (jailRemoved ??= this.jail.remove(id));
    try {
      for (const cache of caches) {
        await mkdir(cache.at, { recursive: true });
        await this.mount(cache.src, cache.at, cache.readonly ?? false);
        mounted.push(cache.at);
      }
      if (secrets.length > 0) await mkdir(secretsDir, { mode: 0o700 });
      for (const secret of secrets) {
        await writeFile(secret.file, secret.value, { mode: 0o400 });
        await chown(secret.file, user.uid, user.gid);
        await mkdir(posix.dirname(secret.at), { recursive: true });
        await (await open(secret.at, 'a')).close();
        await this.mount(secret.file, secret.at, true);
        mounted.push(secret.at);
      }
      if (options.signal?.aborted) throw new CancelledError();
      const made = await this.jail.create({ name: id, rootfs: root, hostname: config.hostname, hostNetwork });
      if (made.exitCode !== 0) throw new Error(`jail -c ${id} failed (exit ${made.exitCode}): ${made.stderr.trim()}`);
      jailCreated = true;
      const limits = capLimits(options.limits, this.limits);
      if (hasLimits(limits)) {
        limited = true;
        const applied = await this.jail.limit(id, limits);
        if (applied.exitCode !== 0) throw new Error(`rctl failed (exit ${applied.exitCode}): ${applied.stderr.trim()} (is kern.racct.enable=1 set at boot?)`);
      }
      const jexec = (runOptions: RunOptions) =>
        this.jail.jexec(
          { name: id, argv: config.argv, cwd: config.cwd, env: config.env, uid: user.uid, gid: user.gid },
          runOptions,
          async () => void (await removeJail()),
        );
      const pids = limits?.pids;
      // rctl's maxproc use of the jail: its deny rule keeps it from passing the limit, so at the limit is a hit.
      const atLimit = async () => ((await this.jail.usage(id)).get('maxproc') ?? 0) >= pids!;
      await (pids === undefined ? jexec(options) : runWatchingLimit(`pids limit ${pids} reached`, atLimit, options, jexec));
    } finally {
      if (limited) await this.jail.unlimit(id);
      await this.cleanUp(jailCreated ? removeJail : undefined, mounted, created, secretsDir, recordFile);
    }
  }

  private async mount(src: string, at: string, readonly: boolean): Promise<void> {
    const { exitCode, stderr } = await this.jail.mountNullfs(src, at, readonly);
    if (exitCode !== 0) throw new Error(`mount -t nullfs ${src} ${at} failed (exit ${exitCode}): ${stderr.trim()}`);
  }

  /** Undoes the set-up, all of it even when a part fails; then reports the first failure. */
  private async cleanUp(
    removeJail: (() => Promise<{ exitCode: number; stderr: string }>) | undefined,
    mounted: readonly string[],
    created: readonly string[],
    secretsDir: string,
    recordFile: string,
  ): Promise<void> {
    const failures: string[] = [];
    if (removeJail) {
      const removed = await removeJail();
      if (removed.exitCode !== 0) failures.push(`jail -r: ${removed.stderr.trim()}`);
    }
    for (const path of [...mounted].reverse()) {
      const { exitCode, stderr } = await this.jail.unmount(path);
      if (exitCode !== 0) failures.push(`umount ${path}: ${stderr.trim()}`);
    }
    if (failures.length > 0) {
      // Removing mountpoints or the record now could delete through a live mount, and
      // init() needs the record to try again.
      throw new Error(`the jail sandbox could not clean up after a step (init() will retry): ${failures.join('; ')}`);
    }
    await removeMountpoints(created);
    await rm(secretsDir, { recursive: true, force: true });
    await rm(recordFile, { force: true });
  }
}

function networkIsHost(network: readonly string[]): boolean {
  if (network.length === 0) return false;
  if (network.length === 1 && network[0] === 'host') return true;
  throw new UnsupportedConfigError(
    `the jail sandbox only supports (network host) or no network; ${network.filter((n) => n !== 'host').join(' ') || network.join(' ')} needs a backend with named networks`,
  );
}

/** Where `path` lands inside `rootfs`, symlinks followed as runc does; a loop is refused, since no runtime will report it here. */
export function resolveInRoot(rootfs: string, path: string): Promise<string> {
  return resolveMountTarget(rootfs, path, (target) => {
    throw new UnsupportedConfigError(`too many levels of symbolic links in mount target ${target}`);
  });
}
