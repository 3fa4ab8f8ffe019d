import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Builder } from '@cairn/builder';

export { BuildError } from '@cairn/builder';
export { CancelledError } from '@cairn/sandbox';
import { parseFetcherSpec } from '@cairn/fetcher';
import { createSandbox, type MacosSandboxOptions, type SandboxKind } from '@cairn/sandbox';
import { parseStoreSpec } from '@cairn/store';
import { UserError } from './cli-error.js';
import { loadSecretKey } from './secret-key.js';

/**
 * Where the engine's pieces come from: flags first, then CAIRN_* variables, then the
 * machine's config file that `tools/setup.sh` writes, so that `cairn build` works with
 * no flags on a machine that was set up.
 */
export const CONFIG_FILE = process.env.CAIRN_CONFIG ?? '/var/lib/cairn/cairn.json';

export interface EngineFlags {
  store?: string;
  fetcher?: string;
  /** The sandbox kind; `--runtime` names the OCI runtime of the Linux sandbox, the same choice. */
  sandbox?: string;
  runtime?: string;
  fastSync?: boolean;
}

interface MachineConfig {
  store?: string;
  fetcher?: string;
  sandbox?: string;
  runtime?: string;
  /** The macos sandbox's build-slot user (see MacosSandboxOptions). */
  macos?: MacosSandboxOptions;
  stateDir?: string;
  healthcheckImage?: string;
}

export async function machineConfig(): Promise<MachineConfig> {
  try {
    return JSON.parse(await readFile(CONFIG_FILE, 'utf8')) as MachineConfig;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UserError(`cannot read the machine config ${CONFIG_FILE}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export async function openBuilder(flags: EngineFlags): Promise<Builder> {
  const config = await machineConfig();
  const storeSpec = flags.store ?? process.env.CAIRN_STORE ?? config.store;
  if (!storeSpec) {
    throw new UserError(`no store given: pass --store btrfs:/path (or overlayfs:, rsync:, xfs:), set CAIRN_STORE, or run tools/setup.sh to make a default in ${CONFIG_FILE}`);
  }
  const fetcherSpec = flags.fetcher ?? process.env.CAIRN_FETCHER ?? config.fetcher ?? 'docker';
  const sandboxKind = flags.sandbox ?? flags.runtime ?? process.env.CAIRN_SANDBOX ?? process.env.CAIRN_RUNTIME ?? config.sandbox ?? config.runtime ?? 'runc';
  const store = wrapUserError(() => parseStoreSpec(storeSpec));
  const fetcher = wrapUserError(() => parseFetcherSpec(fetcherSpec));
  const sandbox = wrapUserError(() => createSandbox(sandboxKind as SandboxKind, {
    ...(config.macos ? { macos: config.macos } : {}),
    // Per store: a sandbox's init() removes every container in its state dir.
    stateDir: join(config.stateDir ?? '/run/cairn', createHash('sha256').update(store.root).digest('hex').slice(0, 16)),
    fastSync: flags.fastSync ?? false,
  }));
  return Builder.open({ store, fetcher, sandbox, dbPath: join(store.root, 'db.sqlite'), secretKey: await loadSecretKey() });
}

/** Driver-spec parsers throw plain errors for bad input; to the user they are input errors. */
function wrapUserError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new UserError(e instanceof Error ? e.message : String(e));
  }
}
