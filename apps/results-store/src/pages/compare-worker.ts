/**
 * The compare work, in a worker thread (see comparer.ts): two builds in, the compare
 * page's HTML or the API's JSON out, with its gzip, so that nothing of a compare but
 * reading the two builds runs on the request thread. Imports nothing of Nest's, so a
 * worker starts in a few milliseconds.
 */
import { gzipSync } from 'node:zlib';
import { parentPort } from 'node:worker_threads';
import type { BuildDetail } from '../queries/build-queries.js';
import { compareBuilds, comparisonJson } from '../queries/compare.js';
import { yieldToRequests } from '../worker-threads.js';
import { comparePage } from './compare-page.js';

export interface CompareTask {
  readonly seq: number;
  readonly kind: 'page' | 'json';
  readonly a: BuildDetail;
  readonly b: BuildDetail;
}

export type CompareReply = { readonly seq: number; readonly body: Uint8Array; readonly gzip: Uint8Array } | { readonly seq: number; readonly error: string };

export function runCompare(task: Pick<CompareTask, 'kind' | 'a' | 'b'>): string {
  const c = compareBuilds(task.a, task.b);
  return task.kind === 'page' ? comparePage(c).value : JSON.stringify(comparisonJson(c));
}

yieldToRequests();

parentPort?.on('message', (task: CompareTask) => {
  try {
    const body = Buffer.from(runCompare(task), 'utf8');
    // Kept for good once made: worth the better compression level.
    const gzip = gzipSync(body, { level: 6 });
    parentPort!.postMessage({ seq: task.seq, body, gzip } satisfies CompareReply);
  } catch (e) {
    parentPort!.postMessage({ seq: task.seq, error: e instanceof Error ? (e.stack ?? e.message) : String(e) } satisfies CompareReply);
  }
});
