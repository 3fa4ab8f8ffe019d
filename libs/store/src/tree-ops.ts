import { mkdir, rm } from 'node:fs/promises';

/** How a driver makes, copies and removes the directory trees its caches and temps live in. */
export interface TreeOps {
  /** Makes an empty tree at `path`, which must not exist. */
  create(path: string): Promise<void>;
  /** Makes `dst`, which must not exist, a writable copy of `src` with its owners, modes and xattrs. */
  copy(src: string, dst: string): Promise<void>;
  /** Removes the tree at `path`, if there is one. */
  remove(path: string): Promise<void>;
}

/** Trees that are plain directories, copied by `copy`. */
export function plainDirectories(copy: (src: string, dst: string) => Promise<void>): TreeOps {
  return {
    create: async (path) => {
      await mkdir(path);
    },
    copy,
    remove: (path) => rm(path, { recursive: true, force: true }),
  };
}
