import { closeSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ownerAlive, ownerToken } from '@cairn/store';

/**
 * Where the leases of the processes sharing a store are kept: a file per process, named
 * by its owner token (`PID.START`), to which it appends `+ID` when a build starts standing
 * on a snapshot and `-ID` when the last one lets go; emptied whenever it holds nothing.
 *
 * Files, not rows of the metadata DB: a fully cached build takes a lease per step, and a
 * commit each cost more than the rest of the build (about 16 of 90 ms for 20 steps); an
 * append is one write() to the page cache. Prune and delete, which are rare, pay instead:
 * they read every live owner's file, and remove the files of dead ones.
 *
 * Writes reach other processes at once (one page cache), which the protocol relies on:
 * a leaser appends, then reads the snapshot's lock; a deleter commits its lock, then
 * reads the files (store-claims.ts). Whichever comes second sees the other.
 */
export class LeaseFiles {
  private fd: number | undefined;

  constructor(
    private readonly dir: string,
    readonly owner: string = ownerToken(),
  ) {}

  add(id: string): void {
    this.append(`+${id}\n`);
  }

  /** Gives up `ids`; `holdsNothing` empties the file instead, so it never grows for long. */
  remove(ids: readonly string[], holdsNothing: boolean): void {
    if (this.fd === undefined || ids.length === 0) return;
    if (holdsNothing) ftruncateSync(this.fd, 0);
    else this.append(ids.map((id) => `-${id}\n`).join(''));
  }

  /** The live processes (this one included) holding a lease on `id`. */
  holders(id: string): string[] {
    return this.live()
      .filter(([, ids]) => ids.has(id))
      .map(([owner]) => owner);
  }

  /** Every snapshot a live process holds a lease on. */
  leased(): Set<string> {
    const all = new Set<string>();
    for (const [, ids] of this.live()) for (const id of ids) all.add(id);
    return all;
  }

  /** Removes this process's file: it holds nothing once its builds are over. */
  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    try {
      unlinkSync(join(this.dir, this.owner));
    } catch {
      // Already gone: a cleaner took it for a dead process's (it cannot be, but harmless).
    }
  }

  private append(text: string): void {
    if (this.fd === undefined) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.fd = openSync(join(this.dir, this.owner), 'a', 0o600);
    }
    writeSync(this.fd, text);
  }

  private live(): [string, Set<string>][] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: [string, Set<string>][] = [];
    for (const owner of names) {
      if (!ownerAlive(owner)) {
        removeIfAny(join(this.dir, owner));
        continue;
      }
      let text: string;
      try {
        text = readFileSync(join(this.dir, owner), 'utf8');
      } catch {
        continue; // closed and removed since the listing
      }
      const ids = new Set<string>();
      for (const line of text.split('\n')) {
        if (line.startsWith('+')) ids.add(line.slice(1));
        else if (line.startsWith('-')) ids.delete(line.slice(1));
      }
      out.push([owner, ids]);
    }
    return out;
  }
}

function removeIfAny(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Another cleaner was first.
  }
}
