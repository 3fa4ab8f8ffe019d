import { rm, writeFile } from 'node:fs/promises';
import { copyTree } from './cp.js';
import { CopyingStore, type StartedQuota } from './copying-store.js';
import { plainDirectories } from './tree-ops.js';
import { ProjectQuota, projectQuotaProblem } from './xfs-quota.js';

const reflinkCopy = (src: string, dst: string) => copyTree(src, dst, 'always');

/**
 * Results and cache views are reflink copies (`cp --reflink=always`): each file shares
 * its data extents with the original until either is written, so a copy costs metadata
 * only and a write never reaches the original. Needs a filesystem with reflinks: XFS made
 * with `mkfs.xfs -m reflink=1` (the default since xfsprogs 5.1), or btrfs.
 *
 * A disk limit is an XFS project quota (the filesystem mounted with `-o prjquota`): each
 * build's temp is a project of its own before the parent's rootfs is copied in. XFS
 * charges a reflinked file in full to every copy, so the copy counts as used when the
 * limit is set, at what it uses plus the step's limit: the snapshot may grow by the limit
 * over its parent's (deleting a parent's file makes room, unlike btrfs and zfs).
 */
export class XfsStore extends CopyingStore {
  readonly kind = 'xfs';

  constructor(root: string) {
    super(root, plainDirectories(reflinkCopy));
  }

  /** Refuses a filesystem without reflinks now, rather than at the first build. */
  override async init(): Promise<void> {
    await super.init();
    const probe = this.layout.newResultTemp('reflink-probe');
    const original = `${probe}.original`;
    try {
      await writeFile(original, 'probe');
      await reflinkCopy(original, probe);
    } catch (e) {
      throw new Error(
        `the xfs store at ${this.root} needs a filesystem with reflink copies (XFS made with mkfs.xfs -m reflink=1, or btrfs): ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    } finally {
      await rm(original, { force: true });
      await rm(probe, { force: true });
    }
  }

  protected copyRootfs(src: string, dst: string): Promise<void> {
    return reflinkCopy(src, dst);
  }

  protected override diskLimitProblem(): Promise<string | undefined> {
    return projectQuotaProblem(this.root);
  }

  protected override startQuota(tmp: string): Promise<StartedQuota> {
    return ProjectQuota.start(tmp);
  }
}
