import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bundlePaths, writeBundle } from './bundle.js';
import { missingMountpoints, removeMountpoints } from './mountpoints.js';
import { ociConfig } from './oci-config.js';
import { feed } from './step-process.js';
import { CancelledError, StepFailedError, type RunConfig, type RunOptions, type Sandbox } from './sandbox.js';

export interface RuncSandboxOptions {
  /** crun takes the same flags and config and starts faster; see RuncSandbox for its host setup. */
  readonly runtime: 'runc' | 'crun';
  /**
   * The runtime's `--root`, where it keeps container state; one per sandbox, since
   * `init()` removes the Cairn containers it finds there. Bundles live beside it, in
   * `STATE_DIR.bundles`: runc warns about any directory in its root that is not a
   * container.
   */
  readonly stateDir: string;
  /** Turn sync system calls into no-ops (see syncSkippingSeccomp). Default false. */
  readonly fastSync?: boolean;
}

/** Only containers with this prefix are ours to remove in init(). */
const PREFIX = 'cairn-';

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

  async init(): Promise<void> {
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    for (const id of await this.containers()) {
      if (id.startsWith(PREFIX)) await this.remove(id);
    }
    // A crash leaves bundles behind, and they hold secret values.
    await rm(this.bundles, { recursive: true, force: true });
  }

  async run(config: RunConfig, rootfs: string, options: RunOptions): Promise<void> {
    if (options.signal?.aborted) throw new CancelledError();
    const id = PREFIX + randomBytes(8).toString('hex');
    const paths = bundlePaths(join(this.bundles, id), config.secrets.length);
    const oci = ociConfig(config, { rootfs: resolve(rootfs), ...paths, fastSync: this.options.fastSync ?? false, arch: process.arch });
    const created = await missingMountpoints(oci.root.path, oci.mounts.map((m) => m.destination));
    try {
      await writeBundle(paths, oci, config);
      await this.runContainer(id, paths.dir, options);
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
   * a crash) removes it first: what counts is that it is gone.
   */
  private async remove(id: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const { exitCode, stderr } = await this.runtime(['delete', '-f', id], false);
      if (exitCode === 0 || !(await this.containers()).includes(id)) return;
      if (attempt === 20) throw new Error(`${this.kind} cannot remove the container ${id}: ${stderr}`);
      await sleep(100);
    }
  }

  /**
   * The containers in our state dir. The runtime keeps one directory per container there,
   * so an empty state dir (the usual case) answers without starting a process.
   */
  private async containers(): Promise<string[]> {
    if ((await readdir(this.stateDir)).length === 0) return [];
    const { stdout } = await this.runtime(['list', '-q']);
    return stdout.split('\n').filter(Boolean);
  }

  private async runtime(args: readonly string[], reject = true) {
    // Loaded on first use: importing execa costs every `cairn` start ~100 ms.
    const { execa } = await import('execa');
    return execa(this.options.runtime, ['--root', this.stateDir, ...args], { stdin: 'ignore', reject });
  }
}
