import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rm, rmdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ownerAlive, ownerToken } from '@cairn/store';
import { bundlePaths, makeBundleDir, writeBundle } from './bundle.js';
import { FuseStaging } from './fuse-staging.js';
import { missingMountpoints, removeMountpoints } from './mountpoints.js';
import { networkIsHost, ociConfig, type SeccompMode } from './oci-config.js';
import { runStepProcess } from './step-process.js';
import { commandExists } from './command-lookup.js';
import {
  CancelledError,
  CommandNotFoundError,
  LimitReachedError,
  StepFailedError,
  type HostNetworkMode,
  type RunConfig,
  type RunOptions,
  type Sandbox,
} from './sandbox.js';
import { StepCgroup } from './step-cgroup.js';
import { capLimits, hasLimits, LIMIT_POLL_MS, type StepLimits } from './step-limits.js';
import { hostStepResolvConf, startUserNetwork } from './user-network.js';
import { letStepRootReach, shiftIn, shiftOut, type UsernsMode } from './user-namespace.js';

export interface RuncSandboxOptions {
  /** crun takes the same flags and config and starts faster; see RuncSandbox for its host setup. */
  readonly runtime: 'runc' | 'crun';
  /**
   * The runtime's `--root`, where it keeps container state; one per store, shared by
   * every process using that store. Bundles live beside it, in `STATE_DIR.bundles`:
   * runc warns about any directory in its root that is not a container.
   */
  readonly stateDir: string;
  /** Turn sync system calls into no-ops (see syncSkippingSeccomp). Default false. */
  readonly fastSync?: boolean;
  /** What a `(network host)` step gets (HostNetworkMode). Default `isolated`. */
  readonly hostNetwork?: HostNetworkMode;
  /** `default`: Docker's default profile's effect (oci-config.ts); `unconfined` for trusted pools. */
  readonly seccomp?: SeccompMode;
  /** Every step's limits, and the most a job may ask for (step-cgroup.ts). */
  readonly limits?: StepLimits;
  /** `remap`: each step in a user namespace of its own (user-namespace.ts). Default `host`. */
  readonly userns?: UsernsMode;
}

/**
 * Containers and their bundles are named `cairn-PID.START-<random>` after the process
 * that runs them (see ProcessOwner in @cairn/store): init() removes only those whose
 * process is gone, so processes sharing a state dir never touch each other's steps.
 */
const PREFIX = 'cairn-';
const OWNED = /^cairn-(\d+\.\d+)-[0-9a-f]+$/;

/**
 * Runs `RUNTIME --root STATE run --bundle BUNDLE ID` so that the step dies with the
 * process that started it. fd 3 is a pipe whose other end only that process holds: when
 * it is gone (a worker killed with -9), the read sees end-of-file, and the watcher kills
 * the container and removes its bundle, which holds the step's secrets, rather than let
 * the step run on with nobody to read it. The stale temp snapshot is left to the next
 * process's start-up (store-claims.ts). Costs one forked shell per step.
 *
 * A background command's stdin is /dev/null unless redirected, hence fd 4.
 */
const WITH_OWNER = `
exec 4<&0
"$1" --root "$2" run --bundle "$3" "$4" <&4 4<&- 3<&- 2>&1 &
run=$!
exec 4<&-
{
  read -r _ <&3
  trap '' TERM
  while kill -0 "$run" 2>/dev/null; do "$1" --root "$2" kill "$4" KILL; sleep 0.1; done
  rm -rf "$3"
} >/dev/null 2>&1 &
watch=$!
wait "$run"
code=$?
kill "$watch" 2>/dev/null
exit "$code"
`;

/** A container or bundle of ours that no live process runs: a crash's leftover. */
function leftover(name: string): boolean {
  if (!name.startsWith(PREFIX)) return false;
  // Names from before owners were recorded (`cairn-<hex>`) have no owner left to ask.
  const owner = OWNED.exec(name)?.[1];
  return owner === undefined || !ownerAlive(owner);
}

/**
 * Runs each step as an OCI container with runc, or with crun, which takes the same
 * command line and config and starts faster. The only module that invokes either.
 *
 * crun 1.8 refuses to start on a hybrid cgroup host ("cgroups in hybrid mode not
 * supported, drop all controllers from cgroupv2") while a controller, typically hugetlb,
 * is enabled on the v2 hierarchy (/sys/fs/cgroup/unified/cgroup.controllers). Binding it
 * to v1 fixes that: `mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup
 * /sys/fs/cgroup/hugetlb`; tools/prepare-host.sh does it for every such controller.
 */
export class RuncSandbox implements Sandbox {
  readonly kind: string;
  private readonly stateDir: string;
  private readonly bundles: string;

  constructor(private readonly options: RuncSandboxOptions) {
    this.kind = options.runtime;
    this.stateDir = resolve(options.stateDir);
    this.bundles = `${this.stateDir}.bundles`;
  }

  /**
   * Removes the containers and bundles (which hold secret values) of processes that died
   * mid-step. Others sharing the state dir may be cleaning up too: what one of them
   * removed first is not an error.
   */
  async init(): Promise<void> {
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    for (const id of await this.containers()) {
      if (leftover(id)) await this.remove(id, true);
    }
    for (const name of await readdirIfAny(this.bundles)) {
      if (leftover(name)) await removeTree(join(this.bundles, name));
    }
    await StepCgroup.removeLeftovers(leftover);
    // Only once empty: a live process's bundle keeps it (writeBundle retries a folder removed under it).
    await rmdir(this.bundles).catch((e: unknown) => {
      if (!['ENOENT', 'ENOTEMPTY', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    });
  }

  async run(unstaged: RunConfig, unstagedRootfs: string, options: RunOptions): Promise<void> {
    if (options.signal?.aborted) throw new CancelledError();
    const id = `${PREFIX}${ownerToken()}-${randomBytes(8).toString('hex')}`;
    const paths = bundlePaths(join(this.bundles, id), unstaged.secrets.length);
    const remap = this.options.userns === 'remap';
    // Only (network host) steps pay for it: the others' path is unchanged.
    const network = networkIsHost(unstaged.network) && (this.options.hostNetwork ?? 'isolated') === 'isolated' ? await startUserNetwork() : undefined;
    // Only steps with limits pay for a cgroup of their own: the others' path is unchanged.
    const limits = capLimits(options.limits, this.options.limits);
    let cgroup: StepCgroup | undefined;
    let staging: FuseStaging | undefined;
    try {
      // What the step may write: shifted to its user namespace's IDs and back afterwards.
      const writable = remap ? [resolve(unstagedRootfs), ...unstaged.mounts.filter((m) => !m.readonly).map((m) => m.src)] : [];
      if (remap) {
        await makeBundleDir(paths.dir);
        staging = await FuseStaging.of(writable, paths.dir);
      }
      const rootfs = staging?.pathOf(resolve(unstagedRootfs)) ?? unstagedRootfs;
      const config = staging ? { ...unstaged, mounts: unstaged.mounts.map((m) => ({ ...m, src: staging!.pathOf(m.src) })) } : unstaged;
      cgroup = hasLimits(limits) ? await StepCgroup.create(id, limits) : undefined;
      const userNetwork = network ? { userNetwork: { netns: network.netns, resolvConf: paths.resolvConf } } : {};
      const oci = ociConfig(config, {
        rootfs: resolve(rootfs),
        ...paths,
        fastSync: this.options.fastSync ?? false,
        ...(this.options.seccomp ? { seccomp: this.options.seccomp } : {}),
        ...(this.options.userns ? { userns: this.options.userns } : {}),
        ...(cgroup ? { cgroupsPath: cgroup.runtimePath } : {}),
        arch: process.arch,
        ...userNetwork,
      });
      const created = await missingMountpoints(
        oci.root.path,
        oci.mounts.map((m) => m.destination),
      );
      const shift = writable.map((dir) => staging?.pathOf(dir) ?? dir);
      let shifted: string[] = [];
      try {
        await shiftIn(shift);
        shifted = shift;
        await writeBundle(paths, oci, config, network ? await hostStepResolvConf() : undefined);
        if (remap) await letStepRootReach([oci.root.path, paths.dir, ...config.mounts.map((m) => m.src)]);
        await network?.ready;
        await (cgroup ? this.runLimited(id, paths.dir, options, cgroup) : this.runContainer(id, paths.dir, options));
      } catch (e) {
        const command = config.argv[0];
        if (
          e instanceof StepFailedError &&
          e.exitCode !== null &&
          command !== undefined &&
          !(await commandExists(oci.root.path, command, config.cwd, config.env))
        ) {
          throw new CommandNotFoundError(command, e.exitCode);
        }
        throw e;
      } finally {
        await shiftOut(shifted);
        await removeMountpoints(created);
        // Only after shiftOut succeeded: the owners are the host's again.
        await staging?.writeBack();
      }
    } finally {
      await rm(paths.dir, { recursive: true, force: true });
      await cgroup?.remove();
      await network?.close();
    }
  }

  /**
   * Runs the container under its cgroup, stopping it at the first sign of its pids limit
   * (a fork bomb would otherwise sit at the limit for ever), and names the limit in the
   * failure of a step that ran into one.
   */
  private async runLimited(id: string, bundle: string, options: RunOptions, cgroup: StepCgroup): Promise<void> {
    const stop = new AbortController();
    let reached: string | undefined;
    const watch = setInterval(() => {
      void cgroup.limitReached().then((limit) => {
        reached ??= limit;
        if (limit?.startsWith('pids') && !stop.signal.aborted) stop.abort();
      });
    }, LIMIT_POLL_MS);
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    try {
      await this.runContainer(id, bundle, { ...options, signal });
    } catch (e) {
      if (e instanceof CancelledError && stop.signal.aborted && !options.signal?.aborted) throw new LimitReachedError(reached!, null, 'SIGKILL');
      if (!(e instanceof StepFailedError)) throw e;
      const killed = e.signalName === 'SIGKILL' || e.exitCode === 137;
      const limit = reached ?? (await cgroup.limitReached(killed));
      throw limit === undefined ? e : new LimitReachedError(limit, e.exitCode, e.signalName);
    } finally {
      clearInterval(watch);
    }
  }

  private runContainer(id: string, bundle: string, options: RunOptions): Promise<void> {
    // One pipe for both streams, so that a single reader sees them interleaved. crun
    // hands that very pipe to the command, which keeps the order exact; runc (without a
    // terminal) gives the command a pipe per stream and relays each from its own thread,
    // so across streams the order is only as close as the relaying. Plain spawn rather
    // than execa: execa's set-up adds about 3 ms to every step, against some 12 ms for a
    // whole crun run. fd 3 is the tie to this process (see WITH_OWNER).
    return runStepProcess(
      {
        argv: ['sh', '-c', WITH_OWNER, 'sh', this.options.runtime, this.stateDir, bundle, id],
        extraPipes: 1,
        kill: (_child, running) => this.kill(id, running),
        // `run` removes the container when its process ends, unless the runtime itself died.
        afterExit: async () => {
          if (await exists(join(this.stateDir, id))) await this.remove(id);
        },
      },
      options,
    );
  }

  /** Retries until the runtime has the container to kill, or `run` has returned. */
  private async kill(id: string, running: () => boolean): Promise<void> {
    while (running()) {
      if ((await this.runtime(['kill', id, 'KILL'], false)).exitCode === 0) return;
      await sleep(50);
    }
  }

  /**
   * `delete -f`, which fails when the `run` that started the container (an orphan, after
   * a crash) or another process cleaning up removes it first: what counts is that it is
   * gone. A dead process's container whose state the runtime cannot read (it died while
   * creating it) is removed as a directory.
   */
  private async remove(id: string, leftover = false): Promise<void> {
    const state = join(this.stateDir, id);
    for (let attempt = 1; ; attempt++) {
      const { exitCode, stderr } = await this.runtime(['delete', '-f', id], false);
      if (exitCode === 0 || !(await exists(state))) return;
      if (attempt === 20) {
        if (leftover) return removeTree(state);
        throw new Error(`${this.kind} cannot remove the container ${id}: ${stderr}`);
      }
      await sleep(100);
    }
  }

  /**
   * The containers in our state dir: the runtime keeps one directory per container there,
   * named by its ID. Read directly rather than through `runc list`, which starts a
   * process and fails outright when another process removes a container during the listing.
   */
  private async containers(): Promise<string[]> {
    return readdirIfAny(this.stateDir);
  }

  private async runtime(args: readonly string[], reject = true) {
    // Loaded on first use: importing execa costs every `cairn` start ~100 ms.
    const { execa } = await import('execa');
    return execa(this.options.runtime, ['--root', this.stateDir, ...args], { stdin: 'ignore', reject });
  }
}

async function readdirIfAny(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** `rm -rf` that another process removing the same tree at once cannot make fail. */
async function removeTree(path: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await rm(path, { recursive: true, force: true });
      return;
    } catch (e) {
      // ENOTEMPTY: the other remover's half-done directory; gone by the next try.
      if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' || attempt === 10) throw e;
      await sleep(20);
    }
  }
}
