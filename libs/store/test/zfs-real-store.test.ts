import { describeStoreBehaviour } from './store-behaviour.js';
import { zfsFixture } from './store-fixtures.js';

// The behaviour every store has, on real ZFS: a file-backed pool on zfs-fuse. What
// zfs-fuse cannot show (FreeBSD's messages, a pool going bad, child datasets on macOS)
// stays in zfs-store.test.ts, against the recording shim.
describeStoreBehaviour(zfsFixture);
