import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rm, rmdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ownerAlive, ownerToken } from '@cairn/store';
import { bundlePaths, writeBundle } from './bundle.js';
import { missingMountpoints, removeMountpoints } from './mountpoints.js';
import { ociConfig } from './oci-config.js';
import { feed } from './step-process.js';
import { commandExists } from './command-lookup.js';
import { CancelledError, CommandNotFoundError, StepFailedError, type RunConfig, type RunOptions, type Sandbox } from './sandbox.js';

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
}

/**
 * Containers and their bundles are named `cairn-PID.START-<random>` after the process
 * that runs them (see ProcessOwner in @cairn/store): init() removes only those whose
 * process is gone, so processes sharing a state dir never touch each other's steps.
 */
const PREFIX = 'cairn-';
const OWNED = /^cairn-(\d+\.\d+)-[0-9a-f]+$/;

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
    // Only once empty: a live process's bundle keeps it (writeBundle retries a folder removed under it).
    await rmdir(this.bundles).catch((e: unknown) => {
      if (!['ENOENT', 'ENOTEMPTY', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    });
  }

  async run(config: RunConfig, rootfs: string, options: RunOptions): Promise<void> {
    if (options.signal?.aborted) throw new CancelledError();
    const id = `${PREFIX}${ownerToken()}-${randomBytes(8).toString('hex')}`;
    const paths = bundlePaths(join(this.bundles, id), config.secrets.length);
    const oci = ociConfig(config, { rootfs: resolve(rootfs), ...paths, fastSync: this.options.fastSync ?? false, arch: process.arch });
    const created = await missingMountpoints(oci.root.path, oci.mounts.map((m) => m.destination));
    try {
      await writeBundle(paths, oci, config);
      await this.runContainer(id, paths.dir, options);
    } catch (e) {
      const command = config.argv[0];
      if (e instanceof StepFailedError && e.exitCode !== null && command !== undefined && !(await commandExists(oci.root.path, command, config.cwd, config.env))) {
        throw new CommandNotFoundError(command, e.exitCode);
      }
      throw e;
    } finally {
      await removeMountpoints(created);
      await rm(paths.dir, { recursive: true, force: true });
    }
  }

  private async runContainer(id: string, bundle: string, options: RunOptions): Promise<void> {
    if (options.signal?.aborted) throw new CancelledError();
    // One pipe for both streams, so that a single reader sees them interleaved. crun
    // hands that very pipe to the command, which keeps the order exact; runc (without a
    // terminal) gives the command a pipe per stream and relays each from its own thread,
    // so across streams the order is only as close as the relaying. `exec`: no shell
    // stays behind. Plain spawn rather than execa: execa's set-up adds about 3 ms to
    // every step, against some 12 ms for a whole crun run.
    const child = spawn('sh', ['-c', 'exec "$@" 2>&1', 'sh', this.options.runtime, '--root', this.stateDir, 'run', '--bundle', bundle, id], {
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'ignore'],
    });
    // 'close' comes after the output has been read to its end.
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    child.stdout!.on('data', (chunk: Buffer) => options.onOutput(chunk));
    let killing: Promise<void> | undefined;
    const stop = () => {
      killing ??= this.kill(id, () => child.exitCode === null && child.signalCode === null);
    };
    const stopFeeding = new AbortController();
    const feeding = options.stdin === undefined ? Promise.resolve(undefined) : feed(child.stdin!, options.stdin, stopFeeding.signal);
    // A stdin source that fails would leave the command with truncated input: stop it.
    const inputFailure = feeding.then((failure) => {
      if (failure !== undefined) stop();
      return failure;
    });
    options.signal?.addEventListener('abort', stop, { once: true });
    if (options.signal?.aborted) stop();
    let result;
    try {
      result = await exited;
    } finally {
      options.signal?.removeEventListener('abort', stop);
      stopFeeding.abort();
    }
    const failure = await inputFailure;
    if (killing !== undefined || result.code === null) {
      await killing;
      // `run` removes the container when its process ends, unless the runtime itself died.
      await this.remove(id);
    }
    if (options.signal?.aborted) throw new CancelledError();
    if (failure !== undefined) throw failure;
    if (result.code !== 0) throw new StepFailedError(result.code, result.signal ?? undefined);
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
