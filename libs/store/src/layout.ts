import { mkdir, readdir, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { errorCode } from './errno.js';
import { ownerAlive, ownerToken } from './process-owner.js';

/**
 * Where a store keeps things under its root:
 *
 *     result/<id>          published results
 *     result-tmp/<temp>    results being built (overlayfs also mounts views here)
 *     cache/<key>/         shared caches, one directory of generations each (shared-caches.ts);
 *                          the key is the escaped name, or `<domain>..<name>` (cacheKey)
 *     cache-tmp/<temp>     cache views in use, and generations on their way out
 *
 * A temp's name starts with the process that made it (`PID.START`, process-owner.ts), so
 * that `init` removes what a dead process left behind but never the work of a live one
 * sharing the store, even when the dead one's pid has been reused.
 */
export class StoreLayout {
  readonly results: string;
  readonly resultTemps: string;
  readonly caches: string;
  readonly cacheTemps: string;

  constructor(readonly root: string) {
    this.results = join(root, 'result');
    this.resultTemps = join(root, 'result-tmp');
    this.caches = join(root, 'cache');
    this.cacheTemps = join(root, 'cache-tmp');
  }

  result(id: string): string {
    return join(this.results, checkId(id));
  }

  /** Cache `name` of trust domain `domain` (none: the store's unscoped caches). */
  cache(name: string, domain?: string): string {
    return join(this.caches, cacheKey(name, domain));
  }

  /** A fresh path (not yet created) to build or mount `id` in. */
  newResultTemp(id: string): string {
    return join(this.resultTemps, tempName(checkId(id)));
  }

  /** A fresh path (not yet created) for a cache view or a generation being removed. */
  newCacheTemp(label: string): string {
    return join(this.cacheTemps, tempName(label));
  }

  async create(): Promise<void> {
    for (const dir of [this.results, this.resultTemps, this.caches, this.cacheTemps]) await mkdir(dir, { recursive: true });
  }

  /** Temps whose owner has died: a crash's leftovers. */
  async deadTemps(): Promise<string[]> {
    const dead: string[] = [];
    for (const dir of [this.resultTemps, this.cacheTemps]) {
      for (const name of await readdir(dir)) {
        if (!ownedByLiveProcess(name)) dead.push(join(dir, name));
      }
    }
    return dead;
  }

  /** The IDs that live processes are building or mounting right now. */
  async idsInUse(): Promise<Set<string>> {
    const ids = new Set<string>();
    for (const name of await readdir(this.resultTemps)) {
      const m = TEMP_NAME.exec(name);
      if (m && ownerAlive(m[1])) ids.add(m[2]!);
    }
    return ids;
  }

  /**
   * Takes a dead process's temp over, so that of several processes cleaning up at once
   * exactly one removes it: a rename to a name of this process's own, which only one of
   * them can do. Resolves to the new path, or undefined when another cleaner was first.
   * A temp that cannot be renamed (a mount point on some filesystems) is handed back
   * where it is, for the caller to remove in place.
   */
  async claim(temp: string): Promise<string | undefined> {
    const mine = join(dirname(temp), tempName('reclaimed'));
    try {
      await rename(temp, mine);
      return mine;
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return undefined;
      return temp;
    }
  }
}

const TEMP_NAME = /^(\d+(?:\.\d+)?)-\d+-(.*)$/;
let tempCount = 0;

/** `PID.START-<n>-<label>`: a temp's name says which process may still be using it. */
export function tempName(label: string): string {
  tempCount += 1;
  return `${ownerToken()}-${tempCount}-${label}`;
}

/** Whether the process named in a temp's name is still running (a name without one: no). */
export function ownedByLiveProcess(name: string): boolean {
  const m = TEMP_NAME.exec(name);
  return m !== null && ownerAlive(m[1]);
}

const ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$/;

/** IDs name directories: no "/", never "." or "..", short enough for a temp name. */
export function checkId(id: string): string {
  if (!ID.test(id)) throw new Error(`${JSON.stringify(id)} is not a snapshot ID: use up to 200 letters, digits, "_", "-" and "." (not first)`);
  return id;
}

const KEPT = /^[A-Za-z0-9_-]$/;

/**
 * A cache name as a directory name: letters, digits, "_" and "-" stay, every other byte
 * of the UTF-8 name becomes ".XX" (lower-case hex). "." only ever starts an escape, so
 * distinct names never collide, and "/", "." and ".." cannot come out.
 */
export function escapeCacheName(name: string): string {
  const bytes = Buffer.from(name, 'utf8');
  // Lone surrogates all encode as U+FFFD: two such names would share a directory.
  if (name === '' || bytes.toString('utf8') !== name) throw new Error(`${JSON.stringify(name)} is not a cache name: it must be non-empty, valid Unicode`);
  let escaped = '';
  for (const byte of bytes) {
    const c = String.fromCharCode(byte);
    escaped += KEPT.test(c) ? c : `.${byte.toString(16).padStart(2, '0')}`;
  }
  if (escaped.length > 255) throw new Error(`cache name ${JSON.stringify(name)} is too long (${escaped.length} bytes escaped, at most 255)`);
  return escaped;
}

/**
 * The directory (Docker volume suffix, ZFS dataset) name of cache `name` in trust domain
 * `domain`: the escaped name when there is no domain (`cairn build`'s caches), else
 * `<escaped domain>..<escaped name>`. An escaped string never holds "..", because its
 * "." always begins a two-hex-digit escape, so a domain's caches never share a directory
 * with another domain's or with an unscoped cache, whatever the names.
 */
export function cacheKey(name: string, domain?: string): string {
  const escaped = escapeCacheName(name);
  if (domain === undefined) return escaped;
  const key = `${escapeCacheName(domain)}..${escaped}`;
  if (key.length > 255)
    throw new Error(`cache name ${JSON.stringify(name)} is too long for domain ${JSON.stringify(domain)} (${key.length} bytes escaped, at most 255)`);
  return key;
}
