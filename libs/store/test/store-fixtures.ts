import { withBtrfs, withTempDir, withTmpfs, withXfs, type TestFilesystem } from '../../../test/support/filesystems.js';
import { withZfsPool } from '../../../test/support/zfs.js';
import type { STORE_KINDS } from '../src/index.js';

/** How to test one driver: on which real filesystems, and what it shares with a parent. */
export interface StoreFixture {
  /** As in `--store KIND:PATH`. */
  readonly kind: (typeof STORE_KINDS)[number];
  /** A filesystem the driver runs on, for most tests. */
  filesystem(): Promise<TestFilesystem>;
  /** A small one of the same kind, to fill up. */
  smallFilesystem(): Promise<TestFilesystem>;
  /** Hard-link mode: unchanged files are the parent's own inodes (see rsync-store.ts). */
  readonly sharesInodesWithParent: boolean;
  /** A build's rootfs is a mount (so a crashed build leaves one behind). */
  readonly mountsBuilds: boolean;
}

const smallTmpfs = () => withTmpfs({ sizeMb: 64 });

export const btrfsFixture: StoreFixture = {
  kind: 'btrfs',
  filesystem: () => withBtrfs(),
  smallFilesystem: () => withBtrfs({ sizeMb: 64 }),
  sharesInodesWithParent: false,
  mountsBuilds: false,
};

export const overlayfsFixture: StoreFixture = {
  kind: 'overlayfs',
  filesystem: withTempDir,
  smallFilesystem: smallTmpfs,
  sharesInodesWithParent: false,
  mountsBuilds: true,
};

export const rsyncFixture: StoreFixture = {
  kind: 'rsync',
  filesystem: withTempDir,
  smallFilesystem: smallTmpfs,
  sharesInodesWithParent: false,
  mountsBuilds: false,
};

export const rsyncHardlinkFixture: StoreFixture = {
  kind: 'rsync-hardlink',
  filesystem: withTempDir,
  smallFilesystem: smallTmpfs,
  sharesInodesWithParent: true,
  mountsBuilds: false,
};

export const xfsFixture: StoreFixture = {
  kind: 'xfs',
  filesystem: () => withXfs(),
  smallFilesystem: () => withXfs({ sizeMb: 300 }),
  sharesInodesWithParent: false,
  mountsBuilds: false,
};

/** Datasets of a file-backed pool on zfs-fuse; a build's temp is a mounted dataset. */
export const zfsFixture: StoreFixture = {
  kind: 'zfs',
  filesystem: () => withZfsPool(),
  smallFilesystem: () => withZfsPool({ sizeMb: 128 }),
  sharesInodesWithParent: false,
  mountsBuilds: true,
};
