import { DockerSandbox, type DockerSandboxOptions } from './docker-sandbox.js';
import { JailSandbox, type JailSandboxOptions } from './jail-sandbox.js';
import { MacosSandbox, type MacosSandboxOptions } from './macos-sandbox.js';
import { RuncSandbox, type RuncSandboxOptions } from './runc-sandbox.js';
import type { Sandbox } from './sandbox.js';

/** The values `--sandbox` accepts. */
export const SANDBOX_KINDS = ['runc', 'crun', 'docker', 'jail', 'macos'] as const;
export type SandboxKind = (typeof SANDBOX_KINDS)[number];

export type SandboxOptions = Omit<RuncSandboxOptions, 'runtime'> & {
  /** The macos sandbox's build-slot user. */
  readonly macos?: MacosSandboxOptions;
  /** The jail sandbox's commands (its state dir is `stateDir`). */
  readonly jail?: Omit<JailSandboxOptions, 'stateDir'>;
  /** The docker sandbox's daemon and platform. */
  readonly docker?: DockerSandboxOptions;
};

/** The sandbox named on the command line or in the machine config. */
export function createSandbox(kind: SandboxKind, options: SandboxOptions): Sandbox {
  // Callers pass configuration text through a cast, so the check runs anyway.
  if (!(SANDBOX_KINDS as readonly string[]).includes(kind)) {
    throw new Error(`unknown sandbox "${String(kind)}": choose one of ${SANDBOX_KINDS.join(', ')}`);
  }
  if (options.userns === 'remap' && kind !== 'runc' && kind !== 'crun') {
    throw new Error(`userns remap is for the runc and crun sandboxes; the ${kind} sandbox's user IDs are its host's (dockerd --userns-remap for docker)`);
  }
  switch (kind) {
    // The settings every driver shares (network, seccomp, limits) reach those that have them.
    case 'docker':
      return new DockerSandbox({ ...options.docker, ...pick(options, 'hostNetwork', 'seccomp', 'limits') });
    case 'jail':
      return new JailSandbox({ ...options.jail, stateDir: options.stateDir, ...pick(options, 'limits') });
    case 'macos':
      if (!options.macos) throw new Error('the macos sandbox needs its build-slot user: macos.uid (e.g. 1000 + slot) in the machine config');
      return new MacosSandbox({ ...options.macos, ...pick(options, 'limits') });
    default:
      return new RuncSandbox({ ...options, runtime: kind });
  }
}

/** The keys of `options` that are set, so that an unset one does not hide a driver's own. */
function pick<K extends keyof SandboxOptions>(options: SandboxOptions, ...keys: K[]): Partial<Pick<SandboxOptions, K>> {
  const out: Partial<Pick<SandboxOptions, K>> = {};
  for (const k of keys) if (options[k] !== undefined) out[k] = options[k];
  return out;
}
