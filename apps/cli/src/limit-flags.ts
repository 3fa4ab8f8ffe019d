/**
 * What each run step may use, as `cairn build` and `cairn submit` both take it: the five
 * flags declared once, and read into the engine's terms (libs/sandbox step-limits.ts). A
 * malformed value is a usage error naming its flag.
 */
import type { Command } from 'commander';
import type { StepLimits } from '@cairn/sandbox';
import { UsageError } from './cli-error.js';

export interface LimitFlags {
  memory?: string;
  pids?: string;
  cpus?: string;
  disk?: string;
  stepTimeout?: string;
}

export interface StepBounds {
  limits?: StepLimits;
  stepTimeoutMs?: number;
}

export function addLimitFlags(command: Command): Command {
  return command
    .option('--memory <size>', 'memory each run step may use, e.g. 4g (no swap beyond it); a step past it is killed and fails saying so')
    .option('--pids <n>', 'processes and threads each run step may have at once; a step that reaches it is stopped (a fork bomb)')
    .option('--cpus <n>', "CPUs' worth of time each run step may use, e.g. 0.5 or 2")
    .option(
      '--disk <size>',
      'bytes each run step may add to its snapshot, e.g. 10g; enforced by the store (btrfs, xfs, zfs, overlayfs on XFS), which the others refuse',
    )
    .option('--step-timeout <duration>', 'a run step still running after this long (90s, 30m, 2h) is killed with its processes and fails');
}

export async function stepBounds(flags: LimitFlags): Promise<StepBounds> {
  // Loaded only when a limit is given: `cairn --help` and most builds stay quick.
  if (flags.memory === undefined && flags.pids === undefined && flags.cpus === undefined && flags.disk === undefined && flags.stepTimeout === undefined)
    return {};
  const { parseDuration, parseStepLimits } = await import('@cairn/sandbox');
  try {
    const limits = parseStepLimits(flags, (key) => `--${key}`);
    const stepTimeoutMs = flags.stepTimeout === undefined ? undefined : parseDuration(flags.stepTimeout, '--step-timeout');
    return { ...(limits ? { limits } : {}), ...(stepTimeoutMs === undefined ? {} : { stepTimeoutMs }) };
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}
