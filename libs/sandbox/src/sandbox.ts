import type { User } from '@cairn/spec';
import type { StepLimits } from './step-limits.js';

/**
 * A sandbox runs one command in a root filesystem that the store prepared, isolated
 * from the host, and reports its output as it is produced:
 *
 *     await sandbox.init();                       // remove containers a crash left behind
 *     await sandbox.run(config, rootfs, {
 *       onOutput: (chunk) => log.write(chunk),     // stdout and stderr, interleaved
 *       signal,                                    // abort = kill the container
 *     });                                          // resolves on exit status 0
 *
 * `run` rejects with StepFailedError on a non-zero exit and with CancelledError when the
 * signal aborts; in both cases the container and its state are gone when it settles.
 */
export interface Sandbox {
  /** Driver name, as in `--sandbox NAME`. */
  readonly kind: string;
  init(): Promise<void>;
  run(config: RunConfig, rootfs: string, options: RunOptions): Promise<void>;
}

/**
 * What a `(network host)` step gets: `isolated` (the default), a network of its own that
 * reaches what the host reaches but not the host's loopback (runc and crun: user-mode
 * networking with slirp4netns; docker: a bridge network of Cairn's); `shared`, the host's
 * own network namespace, loopback included, as OBuilder gives it.
 */
export const HOST_NETWORK_MODES = ['isolated', 'shared'] as const;
export type HostNetworkMode = (typeof HOST_NETWORK_MODES)[number];

export interface RunConfig {
  /** Full command line: the spec's shell followed by the command. */
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: readonly (readonly [string, string])[];
  readonly user: User;
  readonly hostname: string;
  /** `[]`: a fresh network namespace with loopback only; `['host']`: the host's network. */
  readonly network: readonly string[];
  /** Writable bind mounts (cache views). */
  readonly mounts: readonly Mount[];
  /** Files mounted read-only at `target`; their values never touch the rootfs. */
  readonly secrets: readonly Secret[];
}

export interface Mount {
  readonly src: string;
  readonly dst: string;
  readonly readonly?: boolean;
}

export interface Secret {
  readonly target: string;
  readonly value: Uint8Array;
}

export interface RunOptions {
  /** Bytes for the command's stdin; stdin is at EOF after them (or at once when absent). */
  readonly stdin?: AsyncIterable<Uint8Array> | Uint8Array;
  readonly onOutput: (chunk: Uint8Array) => void;
  readonly signal?: AbortSignal;
  /** What the job asks of this step; the sandbox caps it by its own (the worker's) limits. */
  readonly limits?: StepLimits;
}

export class StepFailedError extends Error {
  override readonly name = 'StepFailedError';
  constructor(
    readonly exitCode: number | null,
    readonly signalName?: string,
  ) {
    super(exitCode === null ? `the command was killed by ${signalName ?? 'a signal'}` : `the command exited with code ${exitCode}`);
  }
}

/** The step's command (its shell, usually) is not in its root filesystem. */
export class CommandNotFoundError extends StepFailedError {
  constructor(
    readonly command: string,
    exitCode: number | null,
  ) {
    super(exitCode);
    this.message = `not found: ${command} (in the step's root filesystem; is (shell ...) right for this image?)`;
  }
}

/** The step ran into one of its limits; the message names it ("pids limit 512 reached"). */
export class LimitReachedError extends StepFailedError {
  constructor(
    readonly limit: string,
    exitCode: number | null,
    signalName?: string,
  ) {
    super(exitCode, signalName);
    this.message = limit;
  }
}

export class CancelledError extends Error {
  override readonly name = 'CancelledError';
  constructor() {
    super('cancelled');
  }
}
