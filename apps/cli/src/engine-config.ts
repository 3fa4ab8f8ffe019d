import { ConfigError, configFile, openConfiguredBuilder, readMachineConfig, type Builder, type EngineChoices, type MachineConfig } from '@cairn/builder';
import { UsageError, UserError } from './cli-error.js';

export { BuildError } from '@cairn/builder';
export { CancelledError } from '@cairn/sandbox';

/**
 * The CLI's side of the engine configuration (libs/builder builder-config.ts): flags
 * first, then CAIRN_* variables, then the machine config file. A configuration problem
 * is the user's to fix, so it becomes a UserError (exit 1).
 */
export const CONFIG_FILE = configFile();

export type EngineFlags = EngineChoices;

export function machineConfig(): Promise<MachineConfig> {
  return asUserError(() => readMachineConfig());
}

export function openBuilder(flags: EngineFlags): Promise<Builder> {
  return asUserError(() => openConfiguredBuilder(flags));
}

async function asUserError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ConfigError && e.badValue?.from === 'choice') throw new UsageError(`--${e.badValue.setting}: ${e.message}`);
    if (e instanceof ConfigError) throw new UserError(e.message);
    throw e;
  }
}
