export * from './sandbox.js';
export * from './oci-config.js';
export * from './runc-sandbox.js';
export * from './sandbox-spec.js';
export { JailSandbox, type JailSandboxOptions } from './jail-sandbox.js';
export { FREEBSD_COMMANDS, type JailCommands } from './jail.js';
export { MacosSandbox, MACOS_ROOTFS_HOME, MACOS_ROOTFS_BREW, type MacosSandboxOptions } from './macos-sandbox.js';
export { MACOS_COMMANDS, type MacosCommands } from './macos.js';
