/**
 * What the store's worker threads (compares, charts) share: where a worker's module is,
 * and how a worker steps back for the request thread.
 */
import { readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { setPriority } from 'node:os';
import { pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';

/**
 * The worker module `name` (without extension) beside the module at `here`: the compiled
 * one, or, when the service runs from its TypeScript sources (tests, `tsx`), the source
 * one loaded through tsx.
 */
export function workerEntry(here: string, name: string): { url: URL; execArgv?: string[] } {
  if (!here.endsWith('.ts')) return { url: new URL(`./${name}.js`, here) };
  const url = new URL(`./${name}.ts`, here);
  if (process.execArgv.some((a) => a.includes('tsx'))) return { url };
  return { url, execArgv: [...process.execArgv, '--import', pathToFileURL(createRequire(here).resolve('tsx/esm')).href] };
}

/**
 * Called in a worker: its work is background work, so on a busy machine the thread gives
 * way to the request thread. Linux takes a thread's ID where a process ID goes;
 * elsewhere (no /proc, or not allowed) the thread keeps the process's priority.
 */
export function yieldToRequests(): void {
  if (isMainThread) return;
  try {
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 10);
  } catch {
    // The process's priority, then.
  }
}
