import { errorCode } from './errno.js';
import { freeSpace } from './free-space.js';
import { StoreFullError, type FreeSpace } from './store.js';

const MiB = 1024 * 1024;

/**
 * Turns a failed build's error into StoreFullError when the store ran out of room, so
 * that the engine can tell "prune and retry" from "the step is broken". Call it before
 * the temp is removed, while the space it took still counts.
 *
 * Two signs count: the error itself says so (ENOSPC or EDQUOT from Node, "No space left"
 * in a command's stderr), or the filesystem is nearly full now. The second catches a
 * sandboxed command that failed on a full disk: its error carries only an exit code.
 */
export async function storeFullOr(error: unknown, store: { readonly kind: string; readonly root: string }): Promise<unknown> {
  if (error instanceof StoreFullError) return error;
  const free = await freeSpace(store.root);
  if (!saysNoSpace(error) && !nearlyFull(free)) return error;
  const inodes = free.inodesTotal > 0 ? `, ${free.inodesFree} of ${free.inodesTotal} inodes` : '';
  return new StoreFullError(
    `the ${store.kind} store at ${store.root} is full (${mib(free.bytesFree)} of ${mib(free.bytesTotal)} free${inodes}); ` +
      `nothing was published (delete snapshots to make room): ${messageOf(error)}`,
    { cause: error },
  );
}

function saysNoSpace(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) {
    const code = errorCode(e);
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    if (/No space left on device|Disk quota exceeded/.test(e.message)) return true;
  }
  return false;
}

/** Less than 1% (but at least 16 MiB) of the bytes, or less than 1% of the inodes. */
function nearlyFull(free: FreeSpace): boolean {
  const bytesLow = free.bytesFree < Math.max(16 * MiB, free.bytesTotal / 100);
  const inodesLow = free.inodesTotal > 0 && free.inodesFree < free.inodesTotal / 100;
  return bytesLow || inodesLow;
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
