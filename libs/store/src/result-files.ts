import { readFileSync, statSync } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { errorCode } from './errno.js';

// How the drivers whose results are host directories read the files a build wrote
// beside `rootfs` (Store.log, Store.metadata).

/** Logs up to this size are read with one synchronous read: most are, and hits must be cheap. */
const SMALL_LOG = 1024 * 1024;

/** A published log, chunk by chunk; none when there is no such file. */
export async function* readLogFile(path: string): AsyncGenerator<Uint8Array> {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return;
    throw e;
  }
  if (size === 0) return;
  if (size <= SMALL_LOG) {
    yield readFileSync(path);
    return;
  }
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return;
    throw e;
  }
  try {
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) return;
      yield buffer.slice(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/** A published metadata file's text; undefined when there is no such file. */
export async function readMetadataFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}
