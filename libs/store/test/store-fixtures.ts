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
  /** A filesystem where the driver holds builds to a disk limit; none: it refuses every one. */
  diskLimitFilesystem?(): Promise<TestFilesystem>;
  /** How it refuses a disk limit on `filesystem()`, which has no quotas; none: it does not. */
  readonly diskLimitRefusal?: RegExp;
}

const smallTmpfs = () => withTmpfs({ sizeMb: 64 });

export const btrfsFixture: StoreFixture = {
  kind: 'btrfs',
  filesystem: () => withBtrfs(),
  smallFilesystem: () => withBtrfs({ sizeMb: 64 }),
  sharesInodesWithParent: false,
  mountsBuilds: false,
  diskLimitFilesystem: () => withBtrfs({ quotas: true }),
  diskLimitRefusal: /the btrfs store at .* cannot hold a step to a disk limit: quotas are off on its filesystem: turn them on with `btrfs quota enable /,
};

export const overlayfsFixture: StoreFixture = {
  kind: 'overlayfs',
  filesystem: withTempDir,
  smallFilesystem: smallTmpfs,
  sharesInodesWithParent: false,
  mountsBuilds: true,
  // Its disk limit needs XFS project quotas, which this machine's kernel lacks (no
  // CONFIG_QUOTA: XFS refuses -o prjquota): only the refusal is tested here, the
  // xfs_quota commands against a shim (xfs-quota.test.ts).
  diskLimitRefusal:
    /the overlayfs store at .* cannot hold a step to a disk limit: it limits a step's upper layer with XFS project quotas .*, and its filesystem \(.*\) is \w+, not XFS/,
};

export const rsyncFixture: StoreFixture = {
  kind: 'rsync',
  filesystem: withTempDir,
  smallFilesystem: smallTmpfs,
  sharesInodesWithParent: false,
  mountsBuilds: false,
  diskLimitRefusal:
    /the rsync store at .* cannot hold a step to a disk limit: it keeps plain directories without quotas; a disk limit needs the btrfs, xfs, zfs or overlayfs \(on XFS\) store/,
};

export const rsyncHardlinkFixture: StoreFixture = {
  kind: 'rsync-hardlink',
  filesystem: withTempDir,
  smallFilesystem: smallTmpfs,
  sharesInodesWithParent: true,
  mountsBuilds: false,
  diskLimitRefusal: /the rsync-hardlink store at .* cannot hold a step to a disk limit: it keeps plain directories without quotas/,
};

export const xfsFixture: StoreFixture = {
  kind: 'xfs',
  filesystem: () => withXfs(),
  smallFilesystem: () => withXfs({ sizeMb: 300 }),
  sharesInodesWithParent: false,
  mountsBuilds: false,
  // As overlayfs: no project quotas in this machine's kernel, so only the refusal is tested here.
  diskLimitRefusal: /the xfs store at .* cannot hold a step to a disk limit: the XFS at .* is mounted without project quotas: mount it with -o prjquota/,
};

/** Datasets of a file-backed pool on zfs-fuse; a build's temp is a mounted dataset. */
export const zfsFixture: StoreFixture = {
  kind: 'zfs',
  filesystem: () => withZfsPool(),
  smallFilesystem: () => withZfsPool({ sizeMb: 128 }),
  sharesInodesWithParent: false,
  mountsBuilds: true,
  diskLimitFilesystem: () => withZfsPool(),
};
