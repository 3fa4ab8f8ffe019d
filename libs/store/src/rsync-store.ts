import { CopyingStore } from './copying-store.js';
import { rsyncTree } from './rsync.js';
import { plainDirectories } from './tree-ops.js';

/**
 * `copy`: every result is a full copy of its parent's rootfs. `hardlink`: files are hard
 * links to the parent's instead (rsync --link-dest), which saves the copying time and
 * space but shares inodes:
 *
 * HARD-LINK MODE IS UNSAFE FOR STEPS THAT CHANGE FILES IN PLACE. A linked file is the
 * same inode in the parent, in the new result and in every other result linked to it, so
 * writing into it (appending, `sed -i` without a new file, truncating, `touch`), or
 * changing its mode or owner, changes it in all of them, silently corrupting published
 * snapshots. Only steps that replace files (write a new file, then rename it over the
 * old, as dpkg and most package managers do) or unlink them are safe. OBuilder accepts
 * this risk for the same speed; choose `copy` when in doubt.
 *
 * Caches are always full copies: a cache view is written in place by design.
 */
export class RsyncStore extends CopyingStore {
  readonly kind: string;

  constructor(
    root: string,
    private readonly mode: 'copy' | 'hardlink',
  ) {
    super(
      root,
      plainDirectories((src, dst) => rsyncTree(src, dst)),
    );
    this.kind = mode === 'copy' ? 'rsync' : 'rsync-hardlink';
  }

  protected copyRootfs(src: string, dst: string): Promise<void> {
    return rsyncTree(src, dst, this.mode === 'hardlink' ? { linkDest: src } : {});
  }
}
