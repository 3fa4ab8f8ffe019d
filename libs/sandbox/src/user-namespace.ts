import { chmod, lchown, lstat, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { onFuse } from './fuse-staging.js';
import { readIdXattrs, restoreIdXattrs, shiftIdXattrs } from './id-xattrs.js';
import { UnsupportedConfigError } from './oci-config.js';

/**
 * Whose user IDs a step's processes have on the host. `host` (the default): the step's
 * root is the host's root, less the capabilities it was not given (OBuilder's and
 * Docker's default). `remap`: the step runs in a user namespace of its own where uid and
 * gid 0-65535 are host IDs 100000-165535 (REMAP), as Docker's `--userns-remap` does: a
 * step's root owns nothing of the host's and has no capability over the host's files.
 */
export const USERNS_MODES = ['host', 'remap'] as const;
export type UsernsMode = (typeof USERNS_MODES)[number];

/** Where IDs 0-65535 of a `remap` step land on the host: the range a subuid line gives a first user. */
export const REMAP = { hostId: 100_000, size: 65_536 } as const;

const SETID_BITS = 0o6000;

/**
 * The kernel shows a file to a user namespace with its owner translated, and an owner
 * outside the namespace's range as nobody (65534), which the step's root may not touch.
 * So before a `remap` step, every file of its root filesystem and of its writable mounts
 * gets owner + 100000 (shiftIn), and after it, every file in the range gets its owner
 * back (shiftOut): the store keeps the IDs a step without a user namespace leaves, so
 * step IDs, results and caches are the same in both modes and may be shared.
 *
 * Why a chown pass rather than idmapped mounts (which would cost nothing per file):
 * runc 1.1 cannot make them, and util-linux 2.38's mount has no X-mount.idmap. What the
 * pass costs, and what it does not carry over, is in docs/engine.md (Isolation).
 */
export async function shiftIn(dirs: readonly string[]): Promise<void> {
  for (const dir of dirs) await refuseFuse(dir);
  await shiftTrees(dirs, (id) => (id >= REMAP.size ? 'outside' : id + REMAP.hostId));
}

/**
 * The sandbox gives a remapped step copies of what is on FUSE (fuse-staging.ts); this
 * guards the case it cannot: copies that would be on FUSE themselves.
 */
async function refuseFuse(dir: string): Promise<void> {
  if (await onFuse(dir)) {
    throw new Error(
      `userns remap: ${dir} is on a FUSE filesystem, where the step's root would act as host uid ${REMAP.hostId}, not as root: put the sandbox's state dir on another filesystem, or use userns host`,
    );
  }
}

/**
 * Undoes a shiftIn that succeeded (after one that failed, nothing changed). A file the
 * step made has an owner in the range (the step cannot make any other); a file the host
 * put there meanwhile, owned by a host ID, is left as it is.
 */
export async function shiftOut(dirs: readonly string[]): Promise<void> {
  await shiftTrees(dirs, (id) => (id >= REMAP.hostId && id < REMAP.hostId + REMAP.size ? id - REMAP.hostId : id));
}

/**
 * The runtime mounts the step's root filesystem, its caches and the bundle's files from
 * inside the user namespace, as the step's root: a host user, who may not pass through
 * a directory that only the host's root may enter (mkdtemp's 0700, a state dir). Every
 * directory above `paths` gets the search bit for others where it lacks it (listing
 * stays refused), as Docker makes its root 0711 under --userns-remap.
 */
export async function letStepRootReach(paths: readonly string[]): Promise<void> {
  const dirs = new Set<string>();
  for (const path of paths) {
    for (let dir = dirname(path); !dirs.has(dir); dir = dirname(dir)) {
      dirs.add(dir);
      if (dir === dirname(dir)) break;
    }
  }
  for (const dir of dirs) {
    const { mode } = await stat(dir);
    if (!(mode & 0o001)) await chmod(dir, (mode & 0o7777) | 0o001);
  }
}

/** The range as the OCI config's uidMappings and gidMappings write it. */
export function remapMappings(): { containerID: number; hostID: number; size: number }[] {
  return [{ containerID: 0, hostID: REMAP.hostId, size: REMAP.size }];
}

/** The host ID of a step's ID under `mappings` (a secret file's owner, which the host writes). */
export function hostIdOf(id: number, mappings: readonly { containerID: number; hostID: number; size: number }[] | undefined): number {
  const m = mappings?.find((m) => id >= m.containerID && id < m.containerID + m.size);
  return m ? id - m.containerID + m.hostID : id;
}

interface OwnerChange {
  readonly path: string;
  readonly uid: number;
  readonly gid: number;
  /** The mode to set again: chown clears a regular file's setuid and setgid bits, even for root. */
  readonly mode?: number;
}

/**
 * lchowns every entry of `dirs` (each included) to `map(uid)`:`map(gid)`, and moves the
 * IDs of their ACLs alike, keeping their file capabilities (id-xattrs.ts). All IDs are
 * read and checked first: an ID `map` cannot place makes the step fail before anything
 * changed, naming the file. A hard-linked file is one inode under several names and is
 * changed once.
 */
async function shiftTrees(dirs: readonly string[], map: (id: number) => number | 'outside'): Promise<void> {
  const changes: OwnerChange[] = [];
  const xattrs: string[] = [];
  for (const dir of dirs) {
    xattrs.push(shiftIdXattrs(await readIdXattrs(dir), map));
    const names = await readdir(dir, { recursive: true });
    const seen = new Set<number>();
    // In batches: one call at a time would wait a round trip through libuv's pool for each.
    await inBatches([dir, ...names.map((name) => join(dir, name))], async (path) => {
      const st = await lstat(path);
      if (st.nlink > 1 && !st.isDirectory()) {
        if (seen.has(st.ino)) return;
        seen.add(st.ino);
      }
      const uid = map(st.uid);
      const gid = map(st.gid);
      if (uid === 'outside' || gid === 'outside') {
        throw new UnsupportedConfigError(
          `${path} is owned by ${st.uid}:${st.gid}, outside the IDs 0-${REMAP.size - 1} a step's user namespace maps (userns remap); run it with userns host`,
        );
      }
      if (uid !== st.uid || gid !== st.gid) changes.push({ path, uid, gid, ...(st.isFile() && st.mode & SETID_BITS ? { mode: st.mode & 0o7777 } : {}) });
    });
  }
  await inBatches(changes, async ({ path, uid, gid, mode }) => {
    await lchown(path, uid, gid);
    if (mode !== undefined) await chmod(path, mode);
  });
  for (const dump of xattrs) await restoreIdXattrs(dump);
}

async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += 64) await Promise.all(items.slice(i, i + 64).map(fn));
}
