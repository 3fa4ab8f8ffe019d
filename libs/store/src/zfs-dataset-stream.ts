import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyTree } from './cp.js';
import { RESULT_LOG, RESULT_METADATA } from './store.js';
import { Zfs } from './zfs.js';

export interface DatasetStreamInput {
  /** The scratch dataset to lay the result out in: `POOL/base-image/NAME`; replaced if it exists, destroyed after. */
  readonly dataset: string;
  /** The image's root filesystem, copied with everything `cp -a` keeps. */
  readonly rootfs: string;
  /** What the result's env.json says: the image's env and digest, as the engine writes for a fetched base image. */
  readonly metadata: { readonly env: readonly (readonly [string, string])[]; readonly digest: string };
  /** The snapshot's name (the image's digest: `zfs send` streams name their snapshot). */
  readonly snapshot: string;
  /** A line for the result's log, which a build replays when it starts from this image. */
  readonly log: string;
  /** Where the stream goes. */
  readonly file: string;
}

/**
 * Writes a base image as a ZFS dataset stream (docs/zfs.md), the half a publisher runs on a
 * machine with ZFS: the dataset laid out as a store result (`rootfs/`, env.json, log), one
 * snapshot, `zfs send` of it to a file. ZfsStore.receive makes the result from that file
 * on every ZFS worker, without unpacking a layer there.
 */
export async function writeDatasetStream(input: DatasetStreamInput, zfs = new Zfs()): Promise<void> {
  if (await zfs.exists(input.dataset)) await zfs.destroy(input.dataset, { recursive: true });
  await zfs.create(input.dataset, { parents: true });
  try {
    const mountpoint = await zfs.mountpoint(input.dataset);
    if (!mountpoint?.startsWith('/')) throw new Error(`the dataset ${input.dataset} is not mounted (mountpoint ${mountpoint ?? 'none'})`);
    await copyTree(input.rootfs, join(mountpoint, 'rootfs'), 'auto');
    await writeFile(join(mountpoint, RESULT_METADATA), JSON.stringify({ env: input.metadata.env, digest: input.metadata.digest }));
    await writeFile(join(mountpoint, RESULT_LOG), `${input.log}\n`);
    await zfs.snapshot(input.dataset, input.snapshot);
    await zfs.send(`${input.dataset}@${input.snapshot}`, input.file);
  } finally {
    await zfs.destroy(input.dataset, { recursive: true });
  }
}
