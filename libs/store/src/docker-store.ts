import { createHash } from 'node:crypto';
import { chown, mkdir, readdir, readFile, rename, rm, rmdir, statfs, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { User } from '@cairn/spec';
import type Docker from 'dockerode';
import { currentGeneration, generationName, OnceReleasedCacheView, type Generation } from './cache-generations.js';
import { copyTree } from './cp.js';
import { DiskLimitUnsupportedError, type BuildLimits } from './disk-limit.js';
import { DockerImages } from './docker-images.js';
import { errorCode, pathExists } from './errno.js';
import { freeSpace } from './free-space.js';
import { cacheKey, StoreLayout } from './layout.js';
import { readLogFile, readMetadataFile } from './result-files.js';
import { robocopyMirror } from './robocopy.js';
import { RESULT_LOG, RESULT_METADATA, type CacheView, type FreeSpace, type Store } from './store.js';

export interface DockerStoreOptions {
  /** The daemon's socket; default `/var/run/docker.sock`. */
  readonly socketPath?: string;
  /**
   * The OS of the daemon's host, where cache volumes are copied (the store runs there):
   * `cp -a` on Linux, `robocopy` on Windows. Default: this process's platform.
   */
  readonly hostOs?: HostOs;
  /** Where `robocopy` is (Windows); looked up on PATH by default. */
  readonly robocopy?: string;
}

export type HostOs = 'linux' | 'windows';

/**
 * Makes the existing directory `dst` an exact copy of `src` on the daemon's host: the
 * cache copies of DockerStore. Linux empties `dst` and copies with `cp -a` (reflinks where
 * the filesystem can); Windows has no `cp`, and `robocopy /MIR` does both in one.
 */
export async function mirrorHostTree(os: HostOs, src: string, dst: string, robocopy?: string): Promise<void> {
  if (os === 'windows') return robocopyMirror(src, dst, robocopy);
  for (const entry of await readdir(dst)) await rm(join(dst, entry), { recursive: true, force: true });
  await copyTree(src, dst, 'auto');
}

/** An image as the docker sandbox needs it: what to create a container from, and what its commit keeps. */
export interface DockerImage {
  readonly id: string;
  readonly entrypoint: string[] | null;
  readonly cmd: string[] | null;
}

/**
 * What DockerStore writes into a build's temp directory, next to `rootfs`, for the
 * docker sandbox: run steps in a container created from `base` (or from `committed`, once
 * an earlier run of the same step committed) and commit the container to `target`.
 */
export interface DockerBuildFile {
  /** The parent snapshot's image, or null for a base image (which the fetcher writes into `rootfs`). */
  readonly base: string | null;
  /** The parent's image as `build` found it, so that the sandbox need not inspect it. */
  readonly baseImage?: DockerImage;
  /** The tag the sandbox commits to: the result's own image. */
  readonly target: string;
  /** What the sandbox committed to `target` (it writes this file back); absent when nothing was. */
  readonly committed?: DockerImage;
}

/** The file name of DockerBuildFile in a build's temp directory. */
export const DOCKER_BUILD_FILE = 'docker.json';

/**
 * Snapshots as Docker images: the result `id` is the image `cairn-<hash>:<id>`, where
 * `<hash>` (the first 7 hex digits of the SHA-256 of the store's root path) keeps stores
 * sharing one daemon apart. Everything else a result holds (its log, a base image's
 * env.json) lives on the host in `<root>/result/<id>/`, as in the other stores (layout.ts).
 *
 * Building: the temp directory `dir` gets `docker.json` (DockerBuildFile) and an empty
 * `rootfs/`. The docker sandbox reads docker.json next to the rootfs it is given, commits
 * its container straight to the result's tag and records that in docker.json. When nothing
 * committed and there is no parent, the step filled `dir/rootfs` itself (the engine's
 * fetcher: the base image case), and it is published by `docker import` with the ENV of
 * `dir/env.json`. When nothing committed and there is a parent, the result is the parent's
 * image under the result's tag. Publishing moves the directory, without rootfs/ and
 * docker.json, to `result/<id>` (one rename: atomic); a result exists when it has both its
 * directory and its image, so a tag without a directory is no result. On failure the tag
 * and the directory go. A process that dies between the two leaves the tag, which the next
 * build of that step moves (the old image is then dangling, for `docker image prune`); `init`
 * removes what else a dead process left (export containers, cache views and the temp tags
 * of earlier versions are named after the pid that made them). Per step this is one image
 * inspect (the parent's) and, for a step that changed nothing, one tag.
 *
 * Caches are volumes `cairn-<hash>-cache-<key>` (layout.ts cacheKey: the escaped name,
 * after the escaped trust domain if any), labelled with both. A view is a separate volume
 * `cairn-<hash>-view-<pid>-<n>`, filled by copying (mirrorHostTree) the cache volume's host directory
 * (the volume's Mountpoint: this needs the daemon on this host and root, as the other Linux
 * stores do; on Windows the volume directories are also host paths). The view's path is
 * that host directory, which the docker sandbox bind-mounts. The generation check is the
 * rename trick of shared-caches.ts on marker directories `cache/<key>/<gen>-<token>`
 * on the host: renaming the view's base marker away succeeds for exactly one committer,
 * which then copies its view over the cache volume and adds the next marker. A view taken
 * while a commit copies finds no marker, and retries.
 */
export class DockerStore implements Store {
  readonly kind = 'docker';
  readonly root: string;
  get hostDir(): string {
    return this.root;
  }
  /** The image repository of results: `cairn-<hash>`. */
  readonly repo: string;
  readonly images: DockerImages;
  readonly hostOs: HostOs;
  private readonly robocopy: string | undefined;
  private readonly layout: StoreLayout;
  private count = 0;

  constructor(root: string, options: DockerStoreOptions = {}) {
    this.root = resolve(root);
    this.hostOs = options.hostOs ?? (process.platform === 'win32' ? 'windows' : 'linux');
    this.robocopy = options.robocopy;
    this.layout = new StoreLayout(this.root);
    this.repo = `cairn-${createHash('sha256').update(this.root).digest('hex').slice(0, 7)}`;
    this.images = new DockerImages(options.socketPath ?? '/var/run/docker.sock');
  }

  /** The image holding result `id`. */
  imageOf(id: string): string {
    return `${this.repo}:${id}`;
  }

  async init(): Promise<void> {
    await this.layout.create();
    for (const temp of await this.layout.deadTemps()) {
      const claimed = await this.layout.claim(temp);
      if (claimed !== undefined) await rm(claimed, { recursive: true, force: true });
    }
    for (const c of await this.images.containersNamed(`${this.repo}-export-`)) if (deadOwner(c.name)) await this.images.removeContainer(c.id);
    // Temp tags: what versions before the commit to the result's own tag left.
    for (const ref of await this.images.tagsOf(`${this.repo}-tmp`)) if (deadOwner(ref.slice(ref.indexOf(':') + 1))) await this.images.untag(ref);
    for (const name of await this.images.volumesNamed(`${this.repo}-view-`)) if (deadOwner(name)) await this.images.removeVolume(name);
  }

  async exists(id: string): Promise<boolean> {
    return (await this.resultImage(id)) !== undefined;
  }

  /** The image of result `id`, or undefined when there is no such result. */
  private async resultImage(id: string): Promise<Docker.ImageInspectInfo | undefined> {
    return (await pathExists(this.layout.result(id))) ? await this.images.inspect(this.imageOf(id)) : undefined;
  }

  metadata(id: string): Promise<string | undefined> {
    return readMetadataFile(join(this.layout.result(id), RESULT_METADATA));
  }

  log(id: string): AsyncIterable<Uint8Array> {
    return readLogFile(join(this.layout.result(id), RESULT_LOG));
  }

  async build(parent: string | undefined, id: string, fn: (dir: string) => Promise<void>, limits: BuildLimits = {}): Promise<void> {
    if (await this.exists(id)) throw new Error(`snapshot ${id} already exists in the store at ${this.root}`);
    if (limits.diskBytes !== undefined) await this.checkDiskLimit();
    const parentInfo = parent === undefined ? undefined : await this.resultImage(parent);
    if (parent !== undefined && parentInfo === undefined) throw new Error(`snapshot ${parent} (the parent) is not in the store at ${this.root}`);
    const tmp = this.layout.newResultTemp(id);
    const target = this.imageOf(id);
    try {
      await mkdir(join(tmp, 'rootfs'), { recursive: true });
      const file: DockerBuildFile = {
        base: parent === undefined ? null : this.imageOf(parent),
        ...(parentInfo === undefined
          ? {}
          : {
              baseImage: {
                id: parentInfo.Id,
                entrypoint: (parentInfo.Config?.Entrypoint as string[] | null | undefined) ?? null,
                cmd: parentInfo.Config?.Cmd ?? null,
              },
            }),
        target,
      };
      await writeFile(join(tmp, DOCKER_BUILD_FILE), JSON.stringify(file));
      await fn(tmp);
      const built = JSON.parse(await readFile(join(tmp, DOCKER_BUILD_FILE), 'utf8')) as DockerBuildFile;
      if (built.committed === undefined) {
        if (parent === undefined) await this.images.importRootfs(join(tmp, 'rootfs'), target, await envOf(tmp));
        else if ((await readdir(join(tmp, 'rootfs'))).length > 0)
          throw new Error('the docker store changes a snapshot only through the docker sandbox, but files were written into its rootfs directory');
        else await this.images.tag(parentInfo!.Id, target);
      }
      await rm(join(tmp, 'rootfs'), { recursive: true, force: true });
      await rm(join(tmp, DOCKER_BUILD_FILE), { force: true });
      // A result directory without its image (a crash between the two steps) is stale.
      await rm(this.layout.result(id), { recursive: true, force: true });
      await rename(tmp, this.layout.result(id));
    } catch (e) {
      // Whatever the step committed or tagged is under the result's tag: no directory, no result.
      await this.images.untag(target).catch(() => undefined);
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
  }

  /** The daemon's storage driver holds a step's writes in a container layer, which Cairn cannot put a quota on. */
  checkDiskLimit(): Promise<void> {
    return Promise.reject(
      new DiskLimitUnsupportedError(
        `the docker store at ${this.root} cannot hold a step to a disk limit: its steps write container layers of the Docker daemon, which takes no per-step quota from Cairn; a disk limit needs the btrfs, xfs, zfs or overlayfs (on XFS) store`,
      ),
    );
  }

  async withRootfs<T>(id: string, fn: (rootfs: string) => Promise<T>): Promise<T> {
    if (!(await this.exists(id))) throw new Error(`snapshot ${id} is not in the store at ${this.root}`);
    const tmp = this.layout.newResultTemp(id);
    try {
      await mkdir(join(tmp, 'rootfs'), { recursive: true });
      await this.images.exportTo(this.imageOf(id), `${this.repo}-export-${this.nextName()}`, join(tmp, 'rootfs'));
      return await fn(join(tmp, 'rootfs'));
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  async delete(id: string): Promise<void> {
    const ref = this.imageOf(id);
    const info = await this.images.inspect(ref);
    // A step that changed nothing shares its parent's image: while another snapshot's tag
    // keeps the image, untagging this one removes nothing, so whatever the image holds
    // (containers, children) may be the other snapshot's and is no reason to refuse.
    const lastTag = info !== undefined && (info.RepoTags ?? []).filter((t) => t.startsWith(`${this.repo}:`)).length <= 1;
    if (info !== undefined && lastTag) {
      const containers = await this.images.containersOf(ref);
      if (containers.length > 0) throw new Error(`cannot delete snapshot ${id}: containers use its image ${ref}: ${containers.join(', ')}`);
      const children = (await this.images.childTags(info.Id, `${this.repo}:`)).filter((t) => t !== ref);
      if (children.length > 0) throw new Error(`cannot delete snapshot ${id}: snapshots are built on it (delete them first): ${children.join(', ')}`);
    }
    await rm(this.layout.result(id), { recursive: true, force: true });
    if (info !== undefined) await this.images.untag(ref);
  }

  async cache(name: string, user: User, domain?: string): Promise<CacheView> {
    const key = cacheKey(name, domain);
    const markers = join(this.layout.caches, key);
    const volume = this.cacheVolume(name, domain);
    const labels = { 'cairn.cache': name, ...(domain === undefined ? {} : { 'cairn.cache-domain': domain }) };
    for (;;) {
      const base = await currentGeneration(markers);
      if (base === undefined) {
        await this.createCache(key, labels, user);
        continue;
      }
      const source = await this.images.volumePath(volume);
      if (source === undefined) {
        await this.createCache(key, labels, user);
        continue;
      }
      const viewName = `${this.repo}-view-${this.nextName()}`;
      const path = await this.images.volume(viewName, labels);
      try {
        await mirrorHostTree(this.hostOs, source, path, this.robocopy);
      } catch (e) {
        await this.images.removeVolume(viewName);
        if (await pathExists(join(markers, base.name))) throw e;
        continue;
      }
      // A commit moves the base marker away before it copies over the cache volume.
      if (await pathExists(join(markers, base.name))) return new OnceReleasedCacheView(path, (commit) => this.release(key, base, viewName, path, commit));
      await this.images.removeVolume(viewName);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async deleteCache(name: string, domain?: string): Promise<void> {
    const garbage = this.layout.newCacheTemp('deleted');
    try {
      await rename(this.layout.cache(name, domain), garbage);
    } catch (e) {
      if (errorCode(e) !== 'ENOENT') throw e;
    }
    await rm(garbage, { recursive: true, force: true });
    await this.images.removeVolume(this.cacheVolume(name, domain));
  }

  async df(): Promise<FreeSpace> {
    try {
      const dataRoot = await this.images.dataRoot();
      await statfs(dataRoot);
      return await freeSpace(dataRoot);
    } catch {
      // A daemon on another machine (or in a VM): the host's view is all there is.
      return freeSpace(this.root);
    }
  }

  /** The volume holding shared cache `name` of trust domain `domain`. */
  cacheVolume(name: string, domain?: string): string {
    return this.volumeOf(cacheKey(name, domain));
  }

  private volumeOf(key: string): string {
    return `${this.repo}-cache-${key}`;
  }

  private nextName(): string {
    this.count += 1;
    return `${process.pid}-${this.count}`;
  }

  private async createCache(key: string, labels: Record<string, string>, user: User): Promise<void> {
    const markers = join(this.layout.caches, key);
    await mkdir(markers, { recursive: true });
    const path = await this.images.volume(this.volumeOf(key), labels);
    if ((await currentGeneration(markers)) !== undefined) return;
    if (user.kind === 'unix') await chown(path, user.uid, user.gid);
    const marker = this.layout.newCacheTemp('new');
    await mkdir(marker);
    try {
      await rename(marker, join(markers, generationName(0)));
    } catch (e) {
      await rmdir(marker).catch(() => undefined);
      if (errorCode(e) !== 'ENOENT') throw e;
    }
  }

  private async release(key: string, base: Generation, viewName: string, viewPath: string, commit: boolean): Promise<void> {
    try {
      if (!commit) return;
      const markers = join(this.layout.caches, key);
      const old = this.layout.newCacheTemp('old');
      try {
        await rename(join(markers, base.name), old);
      } catch (e) {
        // ENOENT: another view of this generation was committed first; this one loses.
        if (errorCode(e) === 'ENOENT') return;
        throw e;
      }
      await rmdir(old);
      const target = await this.images.volumePath(this.volumeOf(key));
      // The cache was deleted meanwhile: a deleted cache takes no commits.
      if (target === undefined) return;
      await mirrorHostTree(this.hostOs, viewPath, target, this.robocopy);
      const marker = this.layout.newCacheTemp('new');
      await mkdir(marker);
      try {
        await rename(marker, join(markers, generationName(base.generation + 1)));
      } catch (e) {
        await rmdir(marker).catch(() => undefined);
        if (errorCode(e) !== 'ENOENT') throw e;
      }
    } finally {
      await this.images.removeVolume(viewName);
    }
  }
}

/** The env a base image step wrote to `dir/env.json` (the engine's format), or none. */
async function envOf(dir: string): Promise<[string, string][]> {
  const metadata = await readMetadataFile(join(dir, RESULT_METADATA));
  return metadata === undefined ? [] : ((JSON.parse(metadata) as { env?: [string, string][] }).env ?? []);
}

/** Whether a name ending in `-<pid>-<n>` (or being `<pid>-<n>`) belongs to a process that is gone. */
function deadOwner(name: string): boolean {
  const m = /(?:^|-)(\d+)-\d+$/.exec(name);
  if (!m) return false;
  const pid = Number(m[1]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'EPERM';
  }
}
