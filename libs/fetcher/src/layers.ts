import { lstat, mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decompress, detectCompression, type Compression } from './compression.js';
import { copyVerified } from './digest.js';
import { FetchError } from './fetcher.js';
import { extractTar } from './gnu-tar.js';
import { collect, streamReader, tarEntries, type TarEntry } from './tar-entries.js';

/**
 * Applies one image layer onto a root filesystem, as root.
 *
 * The layer is first spooled to a temporary file while its digest is checked, so that
 * nothing unverified is unpacked. Then two passes over that file:
 *
 *  1. Cairn lists the entries (tar-entries.ts) and plans: whiteouts become deletions of
 *     lower content (`.wh.NAME` removes NAME, `.wh..wh..opq` empties its directory),
 *     a file replacing a lower directory (or the reverse) deletes the lower one, and
 *     every path is resolved through the symlinks it crosses, the layer's own and the
 *     lower layers', refusing any that leaves the rootfs.
 *  2. The deletions run, then GNU tar unpacks every entry but the whiteouts, restoring
 *     ownership, modes, hard links and devices.
 *
 * Whiteouts only ever hide lower content, so running all deletions before any of the
 * layer's own files are written is the order OCI prescribes, whatever the order inside
 * the tar. The resolution in pass 1 matters because GNU tar follows symlinks in the
 * parents of a member as the host kernel sees them: `var/run -> /run` in a lower layer
 * and `var/run/x` in this one would write the host's /run. Such members are refused.
 */
export async function applyLayer(rootfs: string, source: AsyncIterable<Uint8Array>, options: { readonly digest?: string } = {}): Promise<void> {
  const what = options.digest ? `layer ${options.digest}` : 'layer';
  const scratch = await mkdtemp(join(tmpdir(), 'cairn-layer-'));
  try {
    const file = join(scratch, 'layer');
    await copyVerified(source, file, options.digest, 'layer');
    const compression = await detectCompression(file);
    const entries = await listEntries(file, compression, what);
    const planner = new Planner(rootfs, what);
    for (const entry of entries) await planner.add(entry);
    for (const path of planner.deletions) await rm(path, { recursive: true, force: true });
    await extractTar(rootfs, decompress(file, compression), [`${WHITEOUT}*`]);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function listEntries(file: string, compression: Compression, what: string): Promise<TarEntry[]> {
  const bytes = decompress(file, compression);
  try {
    return await collect(tarEntries(streamReader(bytes)));
  } catch (e) {
    throw new FetchError(`${what} cannot be read (${compression}): ${(e as Error).message}`);
  } finally {
    await bytes.return(undefined);
  }
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const MAX_SYMLINKS = 40;

type Kind = { readonly type: 'dir' | 'other' } | { readonly type: 'symlink'; readonly target: string };

/** Member names as path components; leading `/` and `./` are dropped as GNU tar drops them. */
function components(name: string, what: string): string[] {
  const parts = name.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw new FetchError(`${what}: refusing ${JSON.stringify(name)}: it climbs out with '..'`);
  return parts;
}

/**
 * Pass 1 of applyLayer: tracks what each path is (this layer's entries over the lower
 * layers, less what the whiteouts remove) and collects the deletions to make. Paths are
 * latin1-decoded bytes (see tar-entries.ts) and reach the filesystem as Buffers.
 */
class Planner {
  readonly deletions: Buffer[] = [];
  private readonly own = new Map<string, Kind>();
  private readonly removed = new Set<string>();
  private readonly emptied = new Set<string>();
  private readonly lowerCache = new Map<string, Kind | undefined>();

  constructor(
    private readonly rootfs: string,
    private readonly what: string,
  ) {}

  async add(entry: TarEntry): Promise<void> {
    const parts = components(entry.path, this.what);
    const name = parts.at(-1);
    // GNU tar's exclusion of `.wh.*` also skips anything below such a name.
    if (name === undefined || parts.slice(0, -1).some((c) => c.startsWith(WHITEOUT))) return;
    const parent = await this.resolve(parts.slice(0, -1), entry.path);
    if (name === OPAQUE) await this.opaque(parent);
    else if (name.startsWith(WHITEOUT)) await this.whiteout([...parent, name.slice(WHITEOUT.length)]);
    else await this.member(entry, [...parent, name]);
  }

  private async opaque(dir: string[]): Promise<void> {
    if ((await this.lower(dir))?.type !== 'dir') return;
    this.emptied.add(dir.join('/'));
    const children = await readdir(this.host(dir), { encoding: 'buffer' });
    for (const child of children) this.deletions.push(this.host([...dir, child.toString('latin1')]));
  }

  private async whiteout(path: string[]): Promise<void> {
    if ((await this.lower(path)) === undefined) return;
    this.removed.add(path.join('/'));
    this.deletions.push(this.host(path));
  }

  private async member(entry: TarEntry, path: string[]): Promise<void> {
    let kind: Kind = entry.type === 'dir' ? { type: 'dir' } : entry.type === 'symlink' ? { type: 'symlink', target: entry.linkPath } : { type: 'other' };
    if (entry.type === 'hardlink') {
      const target = components(entry.linkPath, this.what);
      const resolved = [...(await this.resolve(target.slice(0, -1), entry.linkPath)), ...target.slice(-1)];
      // A hard link to a symlink is that symlink again, and must be followed as one.
      kind = (await this.kind(resolved)) ?? kind;
    }
    const key = path.join('/');
    const lower = this.own.has(key) ? undefined : await this.lower(path);
    if (lower && (lower.type === 'dir') !== (kind.type === 'dir')) {
      this.removed.add(key);
      this.deletions.push(this.host(path));
    }
    this.own.set(key, kind);
  }

  /** Follows symlinks through `parts` the way the kernel would, inside the rootfs only. */
  private async resolve(parts: readonly string[], name: string): Promise<string[]> {
    const refuse = (why: string) => new FetchError(`${this.what}: refusing ${JSON.stringify(name)}: ${why}`);
    const resolved: string[] = [];
    const pending = [...parts];
    for (let links = 0; pending.length > 0;) {
      const part = pending.shift() as string;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (resolved.pop() === undefined) throw refuse('a symlink on its path leads out of the root filesystem');
        continue;
      }
      const kind = await this.kind([...resolved, part]);
      if (kind?.type !== 'symlink') {
        resolved.push(part);
        continue;
      }
      const at = [...resolved, part].join('/');
      if (kind.target.startsWith('/')) throw refuse(`its parent ${at} is a symlink to the absolute path ${kind.target}`);
      if (++links > MAX_SYMLINKS) throw refuse(`too many levels of symlinks at ${at}`);
      pending.unshift(...kind.target.split('/'));
    }
    return resolved;
  }

  /** What `path` (already resolved) is once this layer's entries so far are applied. */
  private async kind(path: string[]): Promise<Kind | undefined> {
    return this.own.get(path.join('/')) ?? (await this.lower(path));
  }

  /** What `path` is in the lower layers, less what this layer's whiteouts remove. */
  private async lower(path: string[]): Promise<Kind | undefined> {
    for (let i = 1; i <= path.length; i++) {
      const prefix = path.slice(0, i).join('/');
      if (this.removed.has(prefix) || (i < path.length && this.emptied.has(prefix))) return undefined;
    }
    const key = path.join('/');
    if (!this.lowerCache.has(key)) this.lowerCache.set(key, await this.stat(path));
    return this.lowerCache.get(key);
  }

  private async stat(path: string[]): Promise<Kind | undefined> {
    try {
      const st = await lstat(this.host(path));
      if (st.isDirectory()) return { type: 'dir' };
      if (!st.isSymbolicLink()) return { type: 'other' };
      return { type: 'symlink', target: (await readlink(this.host(path), { encoding: 'buffer' })).toString('latin1') };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw e;
    }
  }

  private host(path: readonly string[]): Buffer {
    return Buffer.concat([Buffer.from(this.rootfs), Buffer.from(path.map((p) => `/${p}`).join(''), 'latin1')]);
  }
}
