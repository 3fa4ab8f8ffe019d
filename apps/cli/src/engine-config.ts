/**
 * The CLI's side of the engine configuration (libs/builder builder-config.ts): flags
 * first, then CAIRN_* variables, then the machine config file. A configuration problem
 * is the user's to fix (exit 1, cli-error.ts); a choice out of range given as a flag is a
 * usage error (exit 2), said in the flag's name.
 */
import { ConfigError, openConfiguredBuilder, readMachineConfig, type Builder, type EngineChoices, type MachineConfig } from '@cairn/builder';
import { UsageError } from './cli-error.js';

export { CancelledError } from '@cairn/sandbox';

export type EngineFlags = EngineChoices;

export function machineConfig(): Promise<MachineConfig> {
  return flagsNamed(() => readMachineConfig());
}

export function openBuilder(flags: EngineFlags): Promise<Builder> {
  return flagsNamed(() => openConfiguredBuilder(flags));
}

async function flagsNamed<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ConfigError && e.badValue?.from === 'choice')
      throw new UsageError(`--${e.badValue.setting.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${e.message}`);
    throw e;
  }
}
