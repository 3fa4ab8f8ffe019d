export * from './sandbox.js';
export * from './oci-config.js';
export * from './runc-sandbox.js';
export * from './sandbox-spec.js';
export { JailSandbox, type JailSandboxOptions } from './jail-sandbox.js';
export { FREEBSD_COMMANDS, type JailCommands } from './jail.js';
export { MacosSandbox, MACOS_ROOTFS_HOME, MACOS_ROOTFS_BREW, type MacosSandboxOptions } from './macos-sandbox.js';
export { MACOS_COMMANDS, type MacosCommands } from './macos.js';
export { DockerSandbox, type DockerSandboxOptions } from './docker-sandbox.js';
export { containerConfig, windowsPath, networkMode, type DockerPlatform, type ContainerPlan } from './docker-containers.js';
export { stepResolvConf, SLIRP4NETNS_ARGS, UserNetworkError } from './user-network.js';
export { StepCgroup } from './step-cgroup.js';
export {
  capLimits,
  hasLimits,
  parseStepLimits,
  parseBytes,
  formatBytes,
  parseDuration,
  formatDuration,
  type LimitTexts,
  type StepLimits,
} from './step-limits.js';
export { USERNS_MODES, REMAP, shiftIn, shiftOut, type UsernsMode } from './user-namespace.js';
