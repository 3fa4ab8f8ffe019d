import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseFetcherSpec } from '@cairn/fetcher';
import { createSandbox, type JailSandboxOptions, type MacosSandboxOptions, type SandboxKind } from '@cairn/sandbox';
import { parseStoreSpec } from '@cairn/store';
import { Builder } from './engine.js';

/**
 * Where the engine's pieces come from, for every process that builds (the `cairn` CLI,
 * the worker-agent): explicit choices first, then CAIRN_* variables, then the machine's
 * config file that `tools/setup.sh` writes, so that a machine that was set up needs no
 * flags. Problems with that configuration are ConfigErrors, which each caller turns into
 * its own kind of user-facing error.
 */
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

export const DEFAULT_CONFIG_FILE = '/var/lib/cairn/cairn.json';

/** The explicit choices (CLI flags, a service's own settings); each overrides its CAIRN_* variable. */
export interface EngineChoices {
  store?: string;
  fetcher?: string;
  /** The sandbox kind; `runtime` names the OCI runtime of the Linux sandbox, the same choice. */
  sandbox?: string;
  runtime?: string;
  fastSync?: boolean;
}

export interface MachineConfig {
  store?: string;
  fetcher?: string;
  sandbox?: string;
  runtime?: string;
  /** The macos sandbox's build-slot user (see MacosSandboxOptions). */
  macos?: MacosSandboxOptions;
  /** The jail sandbox's commands and jail parameters (see JailSandboxOptions). */
  jail?: Omit<JailSandboxOptions, 'stateDir'>;
  stateDir?: string;
  healthcheckImage?: string;
}

export function configFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.CAIRN_CONFIG ?? DEFAULT_CONFIG_FILE;
}

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
 * The key for secret digests in step IDs. Every machine that must share cache hits for
 * steps with secrets needs the same key: set CAIRN_SECRET_KEY, or copy the key file.
 * Without either, a random key is made once per user and kept in ~/.cairn.
 */
export async function loadSecretKey(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.CAIRN_SECRET_KEY) return env.CAIRN_SECRET_KEY;
  const file = env.CAIRN_SECRET_KEY_FILE ?? join(env.CAIRN_HOME ?? join(homedir(), '.cairn'), 'secret-digest.key');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError(`cannot read the secret digest key "${file}": ${String(e)}`);
  }
  const key = randomBytes(32).toString('hex');
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // wx: if another process created it meanwhile, use theirs.
  await writeFile(file, `${key}\n`, { mode: 0o600, flag: 'wx' }).catch(() => undefined);
  return (await readFile(file, 'utf8')).trim();
}

/**
 * Where base images come from: the explicit choice, CAIRN_FETCHER, the machine config,
 * else the local Docker daemon. The spec-compiler asks too, so that it pins the very
 * images the workers will fetch.
 */
export function fetcherSpecOf(choices: EngineChoices, config: MachineConfig, env: NodeJS.ProcessEnv = process.env): string {
  return choices.fetcher ?? env.CAIRN_FETCHER ?? config.fetcher ?? 'docker';
}

/** Opens the Builder the choices, environment and machine config describe. */
export async function openConfiguredBuilder(choices: EngineChoices, env: NodeJS.ProcessEnv = process.env): Promise<Builder> {
  const config = await readMachineConfig(env);
  const storeSpec = choices.store ?? env.CAIRN_STORE ?? config.store;
  if (!storeSpec) {
    throw new ConfigError(`no store given: pass --store btrfs:/path (or overlayfs:, rsync:, xfs:), set CAIRN_STORE, or run tools/setup.sh to make a default in ${configFile(env)}`);
  }
  const fetcherSpec = fetcherSpecOf(choices, config, env);
  const sandboxKind = choices.sandbox ?? choices.runtime ?? env.CAIRN_SANDBOX ?? env.CAIRN_RUNTIME ?? config.sandbox ?? config.runtime ?? 'runc';
  const from = (choice: string | undefined, variable: string | undefined) => (choice !== undefined ? 'choice' : variable !== undefined ? 'environment' : 'config file');
  const store = asConfigError({ setting: 'store', from: from(choices.store, env.CAIRN_STORE) }, () => parseStoreSpec(storeSpec));
  const fetcher = asConfigError({ setting: 'fetcher', from: from(choices.fetcher, env.CAIRN_FETCHER) }, () => parseFetcherSpec(fetcherSpec));
  const sandboxSetting = choices.sandbox === undefined && choices.runtime !== undefined ? 'runtime' : 'sandbox';
  const sandbox = asConfigError({ setting: sandboxSetting, from: from(choices.sandbox ?? choices.runtime, env.CAIRN_SANDBOX ?? env.CAIRN_RUNTIME) }, () => createSandbox(sandboxKind as SandboxKind, {
    ...(config.macos ? { macos: config.macos } : {}),
    ...(config.jail ? { jail: config.jail } : {}),
    // Per store: the containers of one store's builds, whichever process runs them.
    stateDir: join(config.stateDir ?? '/run/cairn', createHash('sha256').update(store.root).digest('hex').slice(0, 16)),
    fastSync: choices.fastSync ?? false,
  }));
  return Builder.open({ store, fetcher, sandbox, dbPath: join(store.hostDir, 'db.sqlite'), secretKey: await loadSecretKey(env) });
}

/** Driver-spec parsers throw plain errors for bad input; to the caller they are malformed settings. */
function asConfigError<T>(badValue: NonNullable<ConfigError['badValue']>, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const where = badValue.from === 'config file' ? ` (from ${configFile()})` : badValue.from === 'environment' ? ` (from CAIRN_${badValue.setting.toUpperCase()})` : '';
    throw new ConfigError(`${e instanceof Error ? e.message : String(e)}${where}`, badValue);
  }
}
