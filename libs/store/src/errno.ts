import { lstat } from 'node:fs/promises';
import { constants } from 'node:os';

/** The errno name (ENOENT...) of a failed system call, if `error` is one. */
export function errorCode(error: unknown): string | undefined {
  const e = error as NodeJS.ErrnoException | undefined;
  // libuv has no name for EDQUOT: Node calls it "Unknown system error -122".
  if (e?.errno === -constants.errno.EDQUOT) return 'EDQUOT';
  return e?.code;
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return false;
    throw e;
  }
}
