export { Builder, BuildError, SnapshotInUseError, type BuilderOptions, type BuildOptions } from './engine.js';
export { heading, note, type LogEvent, type Logger, type StepEvent } from './log.js';
export { MetadataDb, type SnapshotRecord } from './metadata-db.js';
export { MASK, maskPatterns, MaskingStream, MIN_MASKED_LENGTH, SecretMasker } from './secret-mask.js';
export { StepLog, replayLog } from './step-log.js';
export { copyTarStream } from './tar-transfer.js';
export {
  ConfigError, configFile, DEFAULT_CONFIG_FILE, fetcherSpecOf, loadSecretKey, openConfiguredBuilder, readMachineConfig,
  type EngineChoices, type MachineConfig,
} from './builder-config.js';
export { resolveInRoot, SnapshotPathError } from './snapshot-files.js';
