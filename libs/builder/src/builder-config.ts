/**
 * The Builder the machine's settings describe (@cairn/machine-config: explicit choices,
 * then CAIRN_* variables, then the machine config file), for every process that builds
 * (the `cairn` CLI, the worker-agent). Problems are ConfigErrors, as there.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseFetcherSpec, type Fetcher } from '@cairn/fetcher';
import { ConfigError, configFile, fetcherSpecOf, readMachineConfig, type EngineChoices, type MachineConfig } from '@cairn/machine-config';
import {
  createSandbox,
  HOST_NETWORK_MODES,
  parseStepLimits,
  SECCOMP_MODES,
  USERNS_MODES,
  type JailSandboxOptions,
  type MacosSandboxOptions,
  type SandboxKind,
  type StepLimits,
} from '@cairn/sandbox';
import { parseStoreSpec } from '@cairn/store';
import { Builder } from './engine.js';

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

/** Opens the Builder the choices, environment and machine config describe. */
export async function openConfiguredBuilder(choices: EngineChoices, env: NodeJS.ProcessEnv = process.env): Promise<Builder> {
  // The sandbox sections are handed on as the sandboxes read them, unchecked like the rest of the file.
  const config = (await readMachineConfig(env)) as SandboxSections;
  const storeSpec = choices.store ?? env.CAIRN_STORE ?? config.store;
  if (!storeSpec) {
    throw new ConfigError(
      `no store given: pass --store btrfs:/path (or overlayfs:, rsync:, xfs:), set CAIRN_STORE, or run tools/setup.sh to make a default in ${configFile(env)}`,
    );
  }
  const fetcherSpec = fetcherSpecOf(choices, config, env);
  const sandboxKind = choices.sandbox ?? choices.runtime ?? env.CAIRN_SANDBOX ?? env.CAIRN_RUNTIME ?? config.sandbox ?? config.runtime ?? 'runc';
  const store = asConfigError({ setting: 'store', from: from(choices.store, env.CAIRN_STORE) }, () => parseStoreSpec(storeSpec), env);
  const fetcher = asConfigError({ setting: 'fetcher', from: from(choices.fetcher, env.CAIRN_FETCHER) }, () => parseFetcherSpec(fetcherSpec), env);
  const sandboxSetting = choices.sandbox === undefined && choices.runtime !== undefined ? 'runtime' : 'sandbox';
  const hostNetwork = asConfigError(
    { setting: 'hostNetwork', from: from(choices.hostNetwork, env.CAIRN_HOST_NETWORK) },
    () =>
      oneOf(
        HOST_NETWORK_MODES,
        choices.hostNetwork ?? env.CAIRN_HOST_NETWORK ?? config.hostNetwork ?? 'isolated',
        'host network mode',
        "isolated (the default: a network namespace of its own, without the host's loopback) or shared (the host's network namespace)",
      ),
    env,
  );
  const seccomp = asConfigError(
    { setting: 'seccomp', from: from(choices.seccomp, env.CAIRN_SECCOMP) },
    () =>
      oneOf(
        SECCOMP_MODES,
        choices.seccomp ?? env.CAIRN_SECCOMP ?? config.seccomp ?? 'default',
        'seccomp mode',
        "default (refuse what Docker's default profile refuses) or unconfined (no filter, for trusted builds)",
      ),
    env,
  );
  const userns = asConfigError(
    { setting: 'userns', from: from(choices.userns, env.CAIRN_USERNS) },
    () =>
      oneOf(
        USERNS_MODES,
        choices.userns ?? env.CAIRN_USERNS ?? config.userns ?? 'host',
        'user namespace mode',
        "host (the default: a step's root is this machine's root, less capabilities) or remap (each step in a user namespace of its own, its root being uid 100000 here)",
      ),
    env,
  );
  const limits = stepLimitsOf(config, env);
  const sandbox = asConfigError(
    { setting: sandboxSetting, from: from(choices.sandbox ?? choices.runtime, env.CAIRN_SANDBOX ?? env.CAIRN_RUNTIME) },
    () =>
      createSandbox(sandboxKind as SandboxKind, {
        ...(config.macos ? { macos: config.macos } : {}),
        ...(config.jail ? { jail: config.jail } : {}),
        // Per store: the containers of one store's builds, whichever process runs them.
        stateDir: join(config.stateDir ?? '/run/cairn', createHash('sha256').update(store.root).digest('hex').slice(0, 16)),
        fastSync: choices.fastSync ?? false,
        hostNetwork,
        seccomp,
        userns,
        ...(limits ? { limits } : {}),
      }),
    env,
  );
  return Builder.open({
    store,
    fetcher,
    sandbox,
    dbPath: join(store.hostDir, 'db.sqlite'),
    secretKey: await loadSecretKey(env),
    ...(limits ? { limits } : {}),
  });
}

/** The fetcher `cairn build` would use (choice, CAIRN_FETCHER, the machine config), alone. */
export async function openConfiguredFetcher(choices: Pick<EngineChoices, 'fetcher'>, env: NodeJS.ProcessEnv = process.env): Promise<Fetcher> {
  const spec = fetcherSpecOf(choices, await readMachineConfig(env), env);
  return asConfigError({ setting: 'fetcher', from: from(choices.fetcher, env.CAIRN_FETCHER) }, () => parseFetcherSpec(spec), env);
}

/** Where a setting came from: an explicit choice, its CAIRN_* variable, else the config file. */
function from(choice: string | undefined, variable: string | undefined): NonNullable<ConfigError['badValue']>['from'] {
  return choice !== undefined ? 'choice' : variable !== undefined ? 'environment' : 'config file';
}

interface SandboxSections extends MachineConfig {
  macos?: MacosSandboxOptions;
  jail?: Omit<JailSandboxOptions, 'stateDir'>;
}

/** `value` if it is one of `modes`; else an error that says what each choice means. */
function oneOf<T extends string>(modes: readonly T[], value: string, what: string, choices: string): T {
  if (!(modes as readonly string[]).includes(value)) throw new Error(`unknown ${what} "${value}": choose ${choices}`);
  return value as T;
}

/** The machine's step limits: each CAIRN_STEP_* variable, else the config file's `stepLimits`; a bad value names where it came from. */
function stepLimitsOf(config: MachineConfig, env: NodeJS.ProcessEnv): StepLimits | undefined {
  const file = config.stepLimits ?? {};
  const variables = { memory: 'CAIRN_STEP_MEMORY', pids: 'CAIRN_STEP_PIDS', cpus: 'CAIRN_STEP_CPUS', disk: 'CAIRN_STEP_DISK' } as const;
  const text = (key: keyof typeof variables) => {
    const value = env[variables[key]] ?? file[key];
    return value === undefined ? {} : { [key]: String(value) };
  };
  try {
    return parseStepLimits({ ...text('memory'), ...text('pids'), ...text('cpus'), ...text('disk') }, (key) =>
      env[variables[key]] !== undefined ? variables[key] : `stepLimits.${key} in ${configFile(env)}`,
    );
  } catch (e) {
    throw new ConfigError(e instanceof Error ? e.message : String(e));
  }
}

/** Driver-spec parsers throw plain errors for bad input; to the caller they are malformed settings. */
function asConfigError<T>(badValue: NonNullable<ConfigError['badValue']>, fn: () => T, env: NodeJS.ProcessEnv): T {
  try {
    return fn();
  } catch (e) {
    const where =
      badValue.from === 'config file'
        ? ` (from ${configFile(env)})`
        : badValue.from === 'environment'
          ? ` (from CAIRN_${badValue.setting.replace(/[A-Z]/g, '_$&').toUpperCase()})`
          : '';
    throw new ConfigError(`${e instanceof Error ? e.message : String(e)}${where}`, badValue);
  }
}
