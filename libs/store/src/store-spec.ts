import { isAbsolute } from 'node:path';
import { BtrfsStore } from './btrfs-store.js';
import { DockerStore } from './docker-store.js';
import { OverlayfsStore } from './overlayfs-store.js';
import { RsyncStore } from './rsync-store.js';
import type { Store } from './store.js';
import { XfsStore } from './xfs-store.js';
import { ZFS_IDLE_UNMOUNT_MS, ZfsStore, zfsStoreOptions } from './zfs-store.js';

const DRIVERS = {
  btrfs: (root: string) => new BtrfsStore(root),
  overlayfs: (root: string) => new OverlayfsStore(root),
  rsync: (root: string) => new RsyncStore(root, 'copy'),
  'rsync-hardlink': (root: string) => new RsyncStore(root, 'hardlink'),
  xfs: (root: string) => new XfsStore(root),
  // Images and volumes in the local daemon; PATH keeps logs and caches' bookkeeping.
  docker: (root: string) => new DockerStore(root),
} satisfies Record<string, (root: string) => Store>;

/**
 * Stores named by a dataset rather than a path. ZFS results are mounted on demand (for a
 * view of the rootfs, the log, the metadata) and unmounted once idle.
 */
const DATASET_DRIVERS = {
  zfs: (dataset: string) => new ZfsStore({ ...zfsStoreOptions(dataset), idleUnmountMs: ZFS_IDLE_UNMOUNT_MS }),
} satisfies Record<string, (dataset: string) => Store>;

/** The driver names `--store NAME:PATH` accepts. */
export const STORE_KINDS = [...Object.keys(DRIVERS), ...Object.keys(DATASET_DRIVERS)];

/** A `--store` value that names no driver, or no place for it. */
export class StoreSpecError extends Error {
  override readonly name = 'StoreSpecError';
}

/** The store named by a `--store` value such as `btrfs:/var/lib/cairn`. */
export function parseStoreSpec(text: string): Store {
  const colon = text.indexOf(':');
  const kind = colon < 0 ? text : text.slice(0, colon);
  const path = colon < 0 ? '' : text.slice(colon + 1);
  if (Object.hasOwn(DATASET_DRIVERS, kind)) {
    if (path === '') throw invalid(text, `${kind} needs a pool or dataset, such as ${kind}:tank`);
    return DATASET_DRIVERS[kind as keyof typeof DATASET_DRIVERS](path);
  }
  if (!Object.hasOwn(DRIVERS, kind)) throw invalid(text, `unknown kind ${JSON.stringify(kind)}`);
  if (!isAbsolute(path)) throw invalid(text, `${kind} needs the absolute path of the store`);
  return DRIVERS[kind as keyof typeof DRIVERS](path);
}

function invalid(text: string, why: string): StoreSpecError {
  const choices = [...Object.keys(DRIVERS).map((kind) => `${kind}:/path`), ...Object.keys(DATASET_DRIVERS).map((kind) => `${kind}:POOL[/DATASET]`)].join(', ');
  return new StoreSpecError(`invalid store ${JSON.stringify(text)}: ${why}; valid choices: ${choices}`);
}
