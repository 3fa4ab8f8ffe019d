/**
 * The upload format for results produced outside the cluster, one request:
 *
 *   POST /api/v1/uploads
 *   Content-Type: application/vnd.cairn.upload.v1
 *
 *   {"result": <BuildResult>, "log": "<build log text, optional>", "logIndex": <optional>}\n
 *   <bytes of artifact 1><bytes of artifact 2>...
 *
 * The first line is the manifest (compact JSON); each artifact's bytes follow in the
 * manifest's order, exactly `size` of them, hashing to its `sha256`. Nothing more may
 * follow. `(echo "$manifest"; cat a b) | curl --data-binary @- ...` builds one.
 *
 * `logIndex` is what the log stream would have said about the log: when each piece of
 * it was written and where the steps start and finish, `{"v":1,"t":[byte,ms, Δbyte,Δms,
 * ...],"s":[[byte,step], ...]}` as builds.log_index keeps it (log-index.ts). It is
 * checked against the log (every byte inside it, in order) and stored with it, so the
 * build page folds the uploaded log by step and shows its lines' times, as for a build of
 * the cluster. An upload without one shows numbered lines only.
 */
import { BuildResult } from '@cairn/contracts';
import { z } from 'zod';
import { LogIndexJson } from '../log-index.js';

export const UPLOAD_CONTENT_TYPE = 'application/vnd.cairn.upload.v1';
export const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;

export const UploadManifest = z.object({
  result: BuildResult,
  log: z
    .string()
    .max(4 * 1024 * 1024)
    .optional(),
  logIndex: LogIndexJson.optional(),
});
export type UploadManifest = z.infer<typeof UploadManifest>;
