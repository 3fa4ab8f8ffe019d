import type { DataSource } from 'typeorm';
import type { Sha256 } from '../ids.js';

/** Every blob the database refers to (artifacts and archived logs). */
export async function referencedBlobs(ds: DataSource): Promise<Set<Sha256>> {
  const rows = (await ds.query('SELECT DISTINCT sha256 AS sha FROM artifacts UNION SELECT log_sha256 AS sha FROM builds WHERE log_sha256 IS NOT NULL')) as {
    sha: Sha256;
  }[];
  return new Set(rows.map((r) => r.sha));
}
