export * from './store.js';
export { BtrfsStore } from './btrfs-store.js';
export { OverlayfsStore } from './overlayfs-store.js';
export { RsyncStore } from './rsync-store.js';
export { XfsStore } from './xfs-store.js';
export { parseStoreSpec, StoreSpecError, STORE_KINDS } from './store-spec.js';
export { escapeCacheName } from './layout.js';
export { ZfsStore, zfsStoreOptions, type ZfsStoreOptions } from './zfs-store.js';
export { ZfsCommandError, type ZfsCommands } from './zfs.js';
