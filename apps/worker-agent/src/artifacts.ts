import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ObjectStore } from '@nats-io/obj';
import { resolveInRoot, SnapshotPathError } from '@cairn/builder';
import { limits, objectStores, type Artifact } from '@cairn/contracts';
import type { Store } from '@cairn/store';

/**
 * A job's outputs: files in its final snapshot, exported by SHA-256 into the
 * `cairn-artifacts` object store (named `sha256:<hex>`, stored once however many jobs
 * produce the same bytes) and listed in the outcome with their size and digest. Paths
 * are resolved inside the snapshot (see resolveInRoot), so a step cannot make the worker
 * export one of the host's files through a symlink.
 */
export class ArtifactError extends Error {
  override readonly name = 'ArtifactError';
}

export async function exportArtifacts(store: Store, snapshotId: string, outputs: readonly string[], objects: ObjectStore): Promise<Artifact[]> {
  if (outputs.length === 0) return [];
  return store.withRootfs(snapshotId, async (root) => {
    const artifacts: Artifact[] = [];
    for (const path of outputs) artifacts.push(await exportOne(root, snapshotId, path, objects));
    return artifacts;
  });
}

async function exportOne(root: string, snapshotId: string, path: string, objects: ObjectStore): Promise<Artifact> {
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
  const name = `sha256:${sha256}`;
  const existing = await objects.info(name);
  if (existing === null || existing.deleted || existing.size !== size) {
    try {
      await objects.put({ name, description: `first exported from ${path}` }, Readable.toWeb(createReadStream(host)) as ReadableStream<Uint8Array>);
    } catch (e) {
      throw new ArtifactError(`${where}: cannot store it in object store ${objectStores.artifacts} as ${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return { path, size, sha256 };
}
