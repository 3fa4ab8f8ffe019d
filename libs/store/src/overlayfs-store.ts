import { randomBytes } from 'node:crypto';
import { chmod, chown, link, mkdir, readdir, readFile, readlink, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { copyTree } from './cp.js';
import type { DiskQuota } from './disk-limit.js';
import { errorCode, pathExists } from './errno.js';
import { LocalStore } from './local-store.js';
import { mountOverlay, unmount } from './mount.js';
import { plainDirectories } from './tree-ops.js';
import { ProjectQuota, projectQuotaProblem } from './xfs-quota.js';

/** The bottom of every stack: overlayfs needs one lower layer to build on, and two to mount read-only. */
const EMPTY = 'empty';
const LINKS = 'l';

/**
 * Results are overlayfs layers; a result's root filesystem is its layer on top of its
 * parent's stack. Besides the builder's files (the log), `result/<id>/overlay/` holds:
 *
 *     upper/       what this step changed: the overlay's upper directory during the build
 *     link         the layer's short name "l/xxxxxxxx", a symlink under the root to upper/
 *     lower        the short names of the layers below, top first, ":"-separated
 *     ref          an empty file: every layer built on this one, and every mounted view
 *                  of it, holds a hard link to it (parent-ref), so its link count tells
 *                  whether the layer may be deleted
 *     parent-ref   this layer's link to its parent's ref
 *
 * Why short names: mount(2) takes one page of options, which absolute layer paths fill
 * after a few dozen layers. As in Docker's overlay2 `l/` directory, each layer has an
 * 8-character symlink, and mounts run in the store root with relative paths: 11 bytes a
 * layer, room for about 350 layers.
 *
 * A build mounts the parent's stack with the temp's upper/ at `<temp>/rootfs`, runs the
 * step, unmounts and publishes the temp by rename; `withRootfs` mounts the stack
 * read-only under result-tmp/ for the time of its callback.
 *
 * Cache views are copies (`cp -a --reflink=auto`): overlayfs cannot clone a directory
 * cheaply, so views share extents where the filesystem has reflinks (xfs, btrfs) and
 * are byte copies elsewhere.
 *
 * A disk limit holds the build's upper/ (with work/, where copy-ups start) to an XFS
 * project quota, as Docker's overlay2 `size` option does: what the step writes, whole
 * files it changes included (a copy-up copies the file). Only on XFS mounted with
 * `-o prjquota`; on other filesystems the store refuses a disk limit.
 */
export class OverlayfsStore extends LocalStore {
  readonly kind = 'overlayfs';

  constructor(root: string) {
    super(
      root,
      plainDirectories((src, dst) => copyTree(src, dst, 'auto')),
    );
  }

  override async init(): Promise<void> {
    await super.init();
    await mkdir(join(this.root, LINKS), { recursive: true });
    await mkdir(join(this.root, EMPTY), { recursive: true });
    await this.removeDanglingLinks();
  }

  protected async prepare(parent: string | undefined, tmp: string, diskBytes: number | undefined): Promise<DiskQuota | undefined> {
    const layer = join(tmp, 'overlay');
    const upper = join(layer, 'upper');
    await mkdir(upper, { recursive: true });
    await mkdir(join(layer, 'work'));
    // Not the layer directory: parent-ref, a hard link to another project's file, could not go in.
    const quota = diskBytes === undefined ? undefined : await ProjectQuota.start(upper, join(layer, 'work'));
    await quota?.limit(diskBytes!);
    await mkdir(join(tmp, 'rootfs'));
    await writeFile(join(layer, 'ref'), '');
    let lower: string[] = [];
    if (parent !== undefined) {
      lower = await this.stack(parent);
      await link(join(this.layerDir(parent), 'ref'), join(layer, 'parent-ref'));
      // The merged root directory takes its owner and mode from the top layer.
      const top = await stat(join(this.layerDir(parent), 'upper'));
      await chown(upper, top.uid, top.gid);
      await chmod(upper, top.mode & 0o7777);
    }
    await writeFile(join(layer, 'lower'), lower.join(':'));
    await mountOverlay({
      cwd: this.root,
      lower: [...lower, EMPTY],
      upper: { dir: relative(this.root, upper), work: relative(this.root, join(layer, 'work')) },
      target: join(tmp, 'rootfs'),
    });
    return quota;
  }

  protected override async diskLimitProblem(): Promise<string | undefined> {
    const problem = await projectQuotaProblem(this.root);
    return problem && `it limits a step's upper layer with XFS project quotas (as Docker's overlay2 size option), and ${problem}`;
  }

  protected async publish(tmp: string, id: string): Promise<void> {
    await unmount(join(tmp, 'rootfs'));
    // An empty rootfs/ in the result would only mislead: the root filesystem is the stack.
    await rmdir(join(tmp, 'rootfs'));
    await rm(join(tmp, 'overlay', 'work'), { recursive: true });
    const name = await this.newLink(id);
    try {
      await writeFile(join(tmp, 'overlay', 'link'), name);
      await this.publishByRename(tmp, id);
    } catch (e) {
      await rm(join(this.root, name));
      throw e;
    }
  }

  async delete(id: string): Promise<void> {
    let refs: number;
    try {
      refs = (await stat(join(this.layerDir(id), 'ref'))).nlink;
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return;
      throw e;
    }
    if (refs > 1) throw new Error(`cannot delete ${id} from the overlayfs store at ${this.root}: ${refs - 1} layer(s) or mounted view(s) stand on it`);
    const garbage = await this.unpublish(id);
    if (garbage === undefined) return;
    await rm(join(this.root, await readFile(join(garbage, 'overlay', 'link'), 'utf8')), { force: true });
    await this.trees.remove(garbage);
  }

  override async withRootfs<T>(id: string, fn: (rootfs: string) => Promise<T>): Promise<T> {
    const view = this.layout.newResultTemp(id);
    const rootfs = join(view, 'rootfs');
    await mkdir(rootfs, { recursive: true });
    try {
      try {
        await link(join(this.layerDir(id), 'ref'), join(view, 'ref'));
      } catch (e) {
        if (errorCode(e) === 'ENOENT') throw this.missing(id);
        throw e;
      }
      await mountOverlay({ cwd: this.root, lower: [...(await this.stack(id)), EMPTY], target: rootfs });
      return await fn(rootfs);
    } finally {
      await this.removeTemp(view);
    }
  }

  private layerDir(id: string): string {
    return join(this.layout.result(id), 'overlay');
  }

  /** The short names of `id`'s layer and of every layer below it, top first. */
  private async stack(id: string): Promise<string[]> {
    const dir = this.layerDir(id);
    const lower = await readFile(join(dir, 'lower'), 'utf8');
    return [await readFile(join(dir, 'link'), 'utf8'), ...(lower === '' ? [] : lower.split(':'))];
  }

  /**
   * Makes a fresh short name for `id`'s layer, pointing where the layer will be once
   * published. Symlink creation fails on an existing name, so no two layers share one.
   */
  private async newLink(id: string): Promise<string> {
    for (;;) {
      const name = `${LINKS}/${randomBytes(5).readUIntBE(0, 5).toString(36).padStart(8, '0')}`;
      try {
        await symlink(`../result/${id}/overlay/upper`, join(this.root, name));
        return name;
      } catch (e) {
        if (errorCode(e) !== 'EEXIST') throw e;
      }
    }
  }

  /**
   * Removes short names a dead process made for a layer it never published. A link is
   * made while its build's temp exists and before the rename that creates its target, so
   * reading the links, then the IDs live processes hold, then the targets, never mistakes
   * a layer being published for a dead one.
   */
  private async removeDanglingLinks(): Promise<void> {
    const dir = join(this.root, LINKS);
    const names = await readdir(dir);
    const inUse = await this.layout.idsInUse();
    for (const name of names) {
      let target: string;
      try {
        target = await readlink(join(dir, name));
      } catch (e) {
        // Removed by another process cleaning up at the same time.
        if (errorCode(e) === 'ENOENT') continue;
        throw e;
      }
      const id = /^\.\.\/result\/([^/]+)\/overlay\/upper$/.exec(target)?.[1];
      if (id !== undefined && inUse.has(id)) continue;
      if (!(await pathExists(join(dir, target)))) await rm(join(dir, name), { force: true });
    }
  }
}
