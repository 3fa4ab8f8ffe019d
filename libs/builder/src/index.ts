export { Builder, type BuilderOptions, type BuildOptions } from './engine.js';
export { BuildError, SnapshotInUseError } from './errors.js';
export { heading, note, stepDone, stepHeading, type LogEvent, type Logger, type StepEvent } from './log.js';
export { MetadataDb, type SnapshotRecord } from './metadata-db.js';
export { MASK, maskPatterns, MaskingStream, MIN_MASKED_LENGTH, SecretMasker } from './secret-mask.js';
export { StepLog } from './step-log.js';
export { copyTarStream } from './tar-transfer.js';
export { loadSecretKey, openConfiguredBuilder, openConfiguredFetcher } from './builder-config.js';
export { readBaseImages } from './base-images.js';
// Sizes in settings are read the way the step limits are (`512m`, `4g`): one parser.
export { ConfigError, readMachineConfig, type EngineChoices, type MachineConfig } from '@cairn/machine-config';
export { resolveInRoot, SnapshotPathError } from './snapshot-files.js';
