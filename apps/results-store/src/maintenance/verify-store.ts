/**
 * `verify`: re-hashes every blob and compares the store with the database. Corrupt
 * blobs (bytes no longer match the name) and missing ones (named by the database, not
 * on disk) are faults; orphans (on disk, named by nothing) are what a crash between a
 * blob write and its database commit leaves, harmless and removed by retention.
 */
import type { DataSource } from 'typeorm';
import type { BlobStore } from '../blobs/blob-store.js';
import type { Sha256 } from '../ids.js';
import { referencedBlobs } from './references.js';

export interface VerifyReport {
  readonly checked: number;
  readonly bytes: number;
  readonly corrupt: { sha256: Sha256; path: string; actual: string }[];
  readonly missing: Sha256[];
  readonly orphans: { sha256: Sha256; path: string; size: number }[];
}

export async function verifyStore(ds: DataSource, blobs: BlobStore): Promise<VerifyReport> {
  const referenced = await referencedBlobs(ds);
  const onDisk = new Set<Sha256>();
  const report: VerifyReport = { checked: 0, bytes: 0, corrupt: [], missing: [], orphans: [] };
  let bytes = 0;
  let checked = 0;
  for await (const blob of blobs.list()) {
    onDisk.add(blob.sha256);
    checked++;
    bytes += blob.size;
    const actual = await blobs.hash(blob.sha256);
    if (actual !== blob.sha256) report.corrupt.push({ sha256: blob.sha256, path: blob.path, actual });
    if (!referenced.has(blob.sha256)) report.orphans.push({ sha256: blob.sha256, path: blob.path, size: blob.size });
  }
  for (const sha of referenced) if (!onDisk.has(sha)) report.missing.push(sha);
  return { ...report, checked, bytes };
}

export function formatVerifyReport(report: VerifyReport): string {
  const lines = [`checked ${report.checked} blob(s), ${report.bytes} bytes`];
  for (const c of report.corrupt) lines.push(`corrupt ${c.sha256} (${c.path}): contents hash to ${c.actual}`);
  for (const m of report.missing) lines.push(`missing ${m}: referenced by the database, not in the store`);
  for (const o of report.orphans) lines.push(`orphan ${o.sha256} (${o.path}, ${o.size} bytes): no build refers to it`);
  lines.push(
    report.corrupt.length || report.missing.length
      ? `FAILED: ${report.corrupt.length} corrupt, ${report.missing.length} missing, ${report.orphans.length} orphan(s)`
      : `ok: ${report.orphans.length} orphan(s)`,
  );
  return lines.join('\n');
}
