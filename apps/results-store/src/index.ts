export { startResultsStore, openStorage, type RunningResultsStore, type StartOptions } from './service.js';
export { configFromEnv, type ResultsConfig, type RetentionPolicy, type ReadAccess } from './config.js';
export { ResultsStoreModule } from './results-store.module.js';
export { UPLOAD_CONTENT_TYPE, UploadManifest } from './ingest/upload-format.js';
export { verifyStore, formatVerifyReport, type VerifyReport } from './maintenance/verify-store.js';
export { applyRetention, type RetentionReport } from './maintenance/retention.js';
export { hashToken, TokenService } from './auth/token-service.js';
export type { BuildId, JobKey, Sha256, UserId, TokenId, TagId } from './ids.js';
