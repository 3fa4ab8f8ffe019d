/**
 * Where a machine's Cairn settings come from, for every process that needs them (the
 * `cairn` CLI, the worker-agent's engine, the spec-compiler's fetcher): explicit choices
 * first, then CAIRN_* variables, then the machine's config file that `tools/setup.sh`
 * writes, so that a machine that was set up needs no flags. Reading them loads no
 * driver: a service that only needs to know where base images come from does not pull
 * in the engine. Problems with that configuration are ConfigErrors, which each caller
 * turns into its own kind of user-facing error.
 */
import { readFile } from 'node:fs/promises';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /**
   * Set when the error is a malformed value of one setting (`--store nonsense`), as opposed
   * to a machine that lacks something: the CLI reports the first as a usage error.
   */
  readonly badValue?: { readonly setting: keyof EngineChoices; readonly from: 'choice' | 'environment' | 'config file' };

  constructor(message: string, badValue?: ConfigError['badValue']) {
    super(message);
    if (badValue) this.badValue = badValue;
  }
}

/** The explicit choices (CLI flags, a service's own settings); each overrides its CAIRN_* variable. */
export interface EngineChoices {
  store?: string;
  fetcher?: string;
  /** The sandbox kind; `runtime` names the OCI runtime of the Linux sandbox, the same choice. */
  sandbox?: string;
  runtime?: string;
  fastSync?: boolean;
  /** What a `(network host)` step gets: `isolated` (the default) or `shared` (HostNetworkMode). */
  hostNetwork?: string;
  /** `default` (Docker's default profile's effect) or `unconfined`, for a pool of trusted builds. */
  seccomp?: string;
  /** `host` (the steps' root is the host's) or `remap` (a user namespace per step). */
  userns?: string;
}

export interface MachineConfig {
  store?: string;
  fetcher?: string;
  sandbox?: string;
  runtime?: string;
  /** The macos sandbox's build-slot user (MacosSandboxOptions in libs/sandbox, which reads it). */
  macos?: unknown;
  /** The jail sandbox's commands and jail parameters (JailSandboxOptions in libs/sandbox, which reads them). */
  jail?: unknown;
  stateDir?: string;
  healthcheckImage?: string;
  /** What a `(network host)` step gets (HostNetworkMode); CAIRN_HOST_NETWORK overrides it. */
  hostNetwork?: string;
  /** The steps' seccomp filter (`default` or `unconfined`); CAIRN_SECCOMP overrides it. */
  seccomp?: string;
  /** `host` or `remap`: whether each step gets a user namespace of its own (UsernsMode); CAIRN_USERNS overrides it. */
  userns?: string;
  /**
   * Every run step's limits, and the most a job may ask for: memory and disk (what a step
   * may add to its snapshot, enforced by the store) as sizes (`4g`), pids and CPUs as
   * numbers. CAIRN_STEP_MEMORY, CAIRN_STEP_PIDS, CAIRN_STEP_CPUS and CAIRN_STEP_DISK override them.
   */
  stepLimits?: { memory?: string | number; pids?: number; cpus?: number; disk?: string | number };
}

export function configFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.CAIRN_CONFIG ?? '/var/lib/cairn/cairn.json';
}

/** The machine config file, or nothing set when there is none. */
export async function readMachineConfig(env: NodeJS.ProcessEnv = process.env): Promise<MachineConfig> {
  const file = configFile(env);
  try {
    return JSON.parse(await readFile(file, 'utf8')) as MachineConfig;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError(`cannot read the machine config ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Where base images come from: the explicit choice, CAIRN_FETCHER, the machine config,
 * else the local Docker daemon. The spec-compiler asks too, so that it pins the very
 * images the workers will fetch.
 */
export function fetcherSpecOf(choices: EngineChoices, config: MachineConfig, env: NodeJS.ProcessEnv = process.env): string {
  return choices.fetcher ?? env.CAIRN_FETCHER ?? config.fetcher ?? 'docker';
}
