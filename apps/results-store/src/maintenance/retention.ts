/**
 * Retention: which builds to forget, then which blobs nothing needs any more.
 *
 * A build is kept when any of these holds: it is among the last `keepLast` builds of its
 * job; it failed or was cancelled less than `keepFailedDays` days ago; it carries a tag.
 * With `keepLast` 0 nothing is removed by age or count. Blobs no build refers to are
 * deleted once unused for the orphan grace period (an ingest re-using a blob refreshes
 * its mtime, so a collection running alongside an ingest leaves that blob alone).
 */
import { rm } from 'node:fs/promises';
import type { DataSource } from 'typeorm';
import type { BlobStore } from '../blobs/blob-store.js';
import type { RetentionPolicy } from '../config.js';
import { exclusiveWrite } from '../db/exclusive-write.js';
import { referencedBlobs } from './references.js';
import { savedPagePath } from '../pages/prerendered-pages.js';

export interface RetentionReport {
  readonly buildsRemoved: number;
  readonly blobsRemoved: number;
  readonly bytesFreed: number;
}

const DAY_MS = 24 * 3600 * 1000;
const BATCH = 500;

export async function expiredBuilds(ds: DataSource, policy: RetentionPolicy, now: number): Promise<string[]> {
  if (policy.keepLast <= 0) return [];
  const failedSince = policy.keepFailedDays > 0 ? now - policy.keepFailedDays * DAY_MS : now + 1;
  const rows = (await ds
    .createQueryBuilder()
    .select('r.id', 'id')
    .from(
      (sub) =>
        sub
          .select([
            'b.id AS id',
            'b.state AS state',
            'b.finished_at AS finished_at',
            'ROW_NUMBER() OVER (PARTITION BY b.job_id ORDER BY b.finished_at DESC, b.id DESC) AS rn',
          ])
          .from('builds', 'b'),
      'r',
    )
    .where('r.rn > :keep', { keep: policy.keepLast })
    .andWhere("NOT (r.state <> 'succeeded' AND r.finished_at >= :failedSince)", { failedSince })
    .andWhere('r.id NOT IN (SELECT build_id FROM build_tags)')
    .getRawMany()) as { id: string }[];
  return rows.map((r) => r.id);
}

/**
 * `dataDir`, when given, is where saved build pages live (pages/prerendered-pages.ts):
 * a removed build's page goes with it.
 */
export async function applyRetention(ds: DataSource, blobs: BlobStore, policy: RetentionPolicy, now = Date.now(), dataDir?: string): Promise<RetentionReport> {
  const expired = await expiredBuilds(ds, policy, now);
  for (let i = 0; i < expired.length; i += BATCH) {
    const ids = expired.slice(i, i + BATCH);
    await exclusiveWrite(ds, () =>
      ds.transaction(async (em) => {
        for (const table of ['steps', 'artifacts', 'build_tags']) {
          await em.createQueryBuilder().delete().from(table).where('build_id IN (:...ids)', { ids }).execute();
        }
        await em.createQueryBuilder().delete().from('builds').where('id IN (:...ids)', { ids }).execute();
      }),
    );
    if (dataDir !== undefined) await Promise.all(ids.map((id) => rm(savedPagePath(dataDir, id), { force: true })));
  }
  const { removed, bytes } = await collectBlobs(ds, blobs, now - policy.orphanGraceMs);
  return { buildsRemoved: expired.length, blobsRemoved: removed, bytesFreed: bytes };
}

/** Deletes blobs no build refers to that nobody has claimed since `idleSince`. */
export async function collectBlobs(ds: DataSource, blobs: BlobStore, idleSince: number): Promise<{ removed: number; bytes: number }> {
  const referenced = await referencedBlobs(ds);
  let removed = 0;
  let bytes = 0;
  for await (const blob of blobs.list()) {
    if (referenced.has(blob.sha256) || blob.mtimeMs > idleSince) continue;
    if (await blobs.removeIfIdle(blob.sha256, idleSince)) {
      removed++;
      bytes += blob.size;
    }
  }
  return { removed, bytes };
}
