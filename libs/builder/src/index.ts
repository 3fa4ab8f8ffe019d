export { Builder, BuildError, type BuilderOptions, type BuildOptions } from './engine.js';
export { heading, note, type LogEvent, type Logger } from './log.js';
export { MetadataDb, type SnapshotRecord } from './metadata-db.js';
export { StepLog, replayLog } from './step-log.js';
export { copyTarStream } from './tar-transfer.js';
