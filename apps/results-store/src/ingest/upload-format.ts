/**
 * The upload format for results produced outside the cluster, one request:
 *
 *   POST /api/v1/uploads
 *   Content-Type: application/vnd.cairn.upload.v1
 *
 *   {"result": <BuildResult>, "log": "<build log text, optional>"}\n
 *   <bytes of artifact 1><bytes of artifact 2>...
 *
 * The first line is the manifest (compact JSON); each artifact's bytes follow in the
 * manifest's order, exactly `size` of them, hashing to its `sha256`. Nothing more may
 * follow. `(echo "$manifest"; cat a b) | curl --data-binary @- ...` builds one.
 */
import { BuildResult } from '@cairn/contracts';
import { z } from 'zod';

export const UPLOAD_CONTENT_TYPE = 'application/vnd.cairn.upload.v1';
export const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;

export const UploadManifest = z.object({
  result: BuildResult,
  log: z
    .string()
    .max(4 * 1024 * 1024)
    .optional(),
});
export type UploadManifest = z.infer<typeof UploadManifest>;
