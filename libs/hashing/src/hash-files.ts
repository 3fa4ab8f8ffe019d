/**
 * SHA-256 digests of many regular files. A few are read on the main thread, several at a
 * time through libuv's pool; a cold context of thousands is split over worker threads,
 * where a synchronous open, read and close cost less than their three promise round trips,
 * and the reads of two cores overlap.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

// Large enough to keep syscalls few, small enough that huge files never sit in memory.
const CHUNK = 1 << 20;
// Symlinks are never followed, even if one replaces a file between lstat and open.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0);
// Below this many files, starting workers (tens of milliseconds) costs more than it saves.
const WORKERS_FROM = 1000;
const MAX_WORKERS = 4;
// Files per message: enough to amortise a message, few enough to balance the workers.
const BATCH = 256;
// Open files at once on the main thread.
const IN_FLIGHT = 16;

export async function hashFiles(paths: readonly string[]): Promise<string[]> {
  const workers = Math.min(availableParallelism(), MAX_WORKERS, Math.ceil(paths.length / BATCH));
  if (paths.length >= WORKERS_FROM && workers > 1) return hashInWorkers(paths, workers);
  const digests = new Array<string>(paths.length);
  let next = 0;
  const lane = async () => {
    // One buffer per lane: a megabyte allocated per file costs more than reading it.
    const buf = Buffer.allocUnsafe(CHUNK);
    while (next < paths.length) {
      const i = next++;
      digests[i] = await hashFile(paths[i]!, buf);
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, paths.length) }, lane));
  return digests;
}

async function hashFile(fsPath: string, buf: Buffer): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(fsPath, OPEN_FLAGS);
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

// Evaluated rather than loaded from a file, so that the bundled CLI needs no extra file.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { closeSync, openSync, readSync } = require('node:fs');
const { createHash } = require('node:crypto');
const buf = Buffer.allocUnsafe(${CHUNK});
function digest(path) {
  const fd = openSync(path, ${OPEN_FLAGS});
  try {
    const hash = createHash('sha256');
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) return hash.digest('hex');
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
}
parentPort.on('message', ({ start, paths }) => {
  try {
    parentPort.postMessage({ start, digests: paths.map(digest) });
  } catch (e) {
    parentPort.postMessage({ start, error: { message: e.message, code: e.code, syscall: e.syscall, path: e.path } });
  }
});
`;

interface Reply {
  readonly start: number;
  readonly digests?: string[];
  readonly error?: { message: string; code?: string; syscall?: string; path?: string };
}

async function hashInWorkers(paths: readonly string[], count: number): Promise<string[]> {
  const digests = new Array<string>(paths.length);
  let next = 0;
  const pool = Array.from({ length: count }, () => new Worker(WORKER_SOURCE, { eval: true }));
  try {
    await Promise.all(
      pool.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            const send = () => {
              if (next >= paths.length) return resolve();
              worker.postMessage({ start: next, paths: paths.slice(next, next + BATCH) });
              next += BATCH;
            };
            worker.on('message', (reply: Reply) => {
              if (reply.error) return reject(Object.assign(new Error(reply.error.message), reply.error));
              reply.digests!.forEach((d, i) => {
                digests[reply.start + i] = d;
              });
              send();
            });
            worker.on('error', reject);
            send();
          }),
      ),
    );
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
  return digests;
}
