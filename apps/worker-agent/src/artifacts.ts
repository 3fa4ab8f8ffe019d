import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { resolveInRoot, SnapshotPathError } from '@cairn/builder';
import { blobStores, limits, putBlob, type Artifact } from '@cairn/contracts';
import type { Store } from '@cairn/store';

/**
 * A job's outputs: files in its final snapshot, exported as this worker's blobs named by
 * their SHA-256 (blob-store.ts in @cairn/contracts; stored once however many of its jobs
 * produce the same bytes) and listed in the outcome with their size and digest. Paths
 * are resolved inside the snapshot (see resolveInRoot), so a step cannot make the worker
 * export one of the host's files through a symlink.
 */
export class ArtifactError extends Error {
  override readonly name = 'ArtifactError';
}

export async function exportArtifacts(store: Store, snapshotId: string, outputs: readonly string[], nc: NatsConnection, worker: string): Promise<Artifact[]> {
  if (outputs.length === 0) return [];
  return store.withRootfs(snapshotId, async (root) => {
    const artifacts: Artifact[] = [];
    for (const path of outputs) artifacts.push(await exportOne(root, snapshotId, path, nc, worker));
    return artifacts;
  });
}

async function exportOne(root: string, snapshotId: string, path: string, nc: NatsConnection, worker: string): Promise<Artifact> {
  const where = `output ${path} of snapshot ${snapshotId}`;
  let host: string;
  try {
    host = await resolveInRoot(root, path);
  } catch (e) {
    if (e instanceof SnapshotPathError) throw new ArtifactError(`${where}: ${e.message}`);
    throw e;
  }
  const info = await lstat(host);
  if (!info.isFile()) throw new ArtifactError(`${where}: not a regular file (outputs are files)`);
  if (info.size > limits.maxArtifactBytes) throw new ArtifactError(`${where}: ${info.size} bytes, more than the limit of ${limits.maxArtifactBytes}`);
  // Hash first: a file already stored (same bytes from an earlier job) is not sent again.
  const hash = createHash('sha256');
  let size = 0;
  for await (const piece of createReadStream(host)) {
    hash.update(piece as Buffer);
    size += (piece as Buffer).length;
  }
  const sha256 = hash.digest('hex');
  try {
    // The name is checked against the bytes as they are sent: a file changed meanwhile fails.
    await putBlob(nc, 'artifacts', worker, createReadStream(host), sha256);
  } catch (e) {
    throw new ArtifactError(
      `${where}: cannot store it in stream ${blobStores.artifacts.stream} as sha256:${sha256}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  return { path, size, sha256 };
}
