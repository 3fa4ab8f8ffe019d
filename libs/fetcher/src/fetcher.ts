/**
 * A fetcher turns the image of `(from IMAGE)` into a root filesystem and its env.
 * The engine calls it inside `store.build` for the base snapshot:
 *
 *     const image = await fetcher.fetch('busybox:latest', join(dir, 'rootfs'), log);
 *     // image.env: the image's Env, image.digest: the manifest digest the tag resolved to
 *     const pinned = `busybox:latest@${await fetcher.resolve('busybox:latest')}`;
 *
 * `rootfs` is an empty directory; on success it holds the image's filesystem with
 * layers applied in order (whiteouts honoured) and ownership and modes preserved.
 * A fetcher logs the digest it resolved a tag to, so that a build log says exactly
 * which image it started from.
 */
export interface Fetcher {
  /** Driver name, as in `--fetcher NAME:...`. */
  readonly kind: string;
  fetch(image: string, rootfs: string, log: (line: string) => void): Promise<FetchedImage>;
  /**
   * The digest `image` resolves to now, without unpacking anything: the spec-compiler
   * pins `(from IMAGE)` to `IMAGE@DIGEST` with it, so that every worker builds from the
   * same image. `fetch` of the pinned reference gets that image or fails; a reference
   * already pinned resolves to its own digest once the image is found to match it.
   */
  resolve(image: string): Promise<string>;
  /**
   * For ZFS stores (docs/zfs.md): the image's root filesystem as a ZFS dataset stream,
   * written to `file`, when the image offers one for this fetcher's platform; undefined
   * when it does not (then `fetch` unpacks its layers). Fetchers that cannot hold one lack it.
   */
  datasetStream?(image: string, file: string, log: (line: string) => void): Promise<DatasetStream | undefined>;
}

/** A ZFS dataset stream fetched to a file: `zfs receive` makes the image's result from it. */
export interface DatasetStream {
  /** The digest of the artifact manifest in the image's index. */
  readonly digest: string;
  readonly size: number;
}

export interface FetchedImage {
  /** The image config's Env, as [name, value] in image order. */
  readonly env: readonly (readonly [string, string])[];
  /** The image config's WorkingDir and User, where it sets them: what `cairn import --resolve` starts a stage with. */
  readonly workingDir?: string;
  readonly user?: string;
  /** `sha256:...` of the image manifest the reference resolved to. */
  readonly digest: string;
}

/** The image cannot be had: unknown name, unreachable source, bad digest. */
export class FetchError extends Error {
  override readonly name = 'FetchError';
}

/** The source has no image of that name (as opposed to one it cannot read). */
export class ImageNotFoundError extends FetchError {}
