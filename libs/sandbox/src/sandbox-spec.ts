import { RuncSandbox, type RuncSandboxOptions } from './runc-sandbox.js';
import type { Sandbox } from './sandbox.js';

/** The values `--sandbox` accepts. */
export const SANDBOX_KINDS = ['runc', 'crun'] as const;
export type SandboxKind = (typeof SANDBOX_KINDS)[number];

export type SandboxOptions = Omit<RuncSandboxOptions, 'runtime'>;

/** The sandbox named on the command line or in the machine config. */
export function createSandbox(kind: SandboxKind, options: SandboxOptions): Sandbox {
  // Callers pass configuration text through a cast, so the check runs anyway.
  if (!(SANDBOX_KINDS as readonly string[]).includes(kind)) {
    throw new Error(`unknown sandbox "${String(kind)}": choose one of ${SANDBOX_KINDS.join(', ')}`);
  }
  return new RuncSandbox({ ...options, runtime: kind });
}
