/**
 * Comparing two builds, off the request thread. The diff of two large specs and the
 * alignment of thousands of steps take a fifth of a second or more; run on the event
 * loop, sixteen of them at once held every other request (`/healthz` included) for
 * seconds. So the work runs in a small pool of worker threads, behind a bounded queue
 * (beyond it the caller answers 503 with Retry-After rather than pile up work nobody
 * will wait for), and its result is kept: a stored build never changes, so a compare of
 * two build IDs is the same forever and repeated views cost nothing.
 */
import { Worker } from 'node:worker_threads';
import { Inject, Injectable } from '@nestjs/common';
import type { BuildDetail } from '../queries/build-queries.js';
import { CONFIG } from '../tokens.js';
import { workerEntry } from '../worker-threads.js';
import type { CompareReply, CompareTask } from './compare-worker.js';

export type CompareKind = CompareTask['kind'];

/** Too many compares under way; come back in `retryAfterS` seconds. */
export class CompareBusyError extends Error {
  override readonly name = 'CompareBusyError';
  constructor(readonly retryAfterS: number) {
    super(`too many compares under way; retry in ${retryAfterS} s`);
  }
}

export interface ComparerOptions {
  /** Worker threads (each runs one compare at a time). */
  readonly workers: number;
  /** Compares admitted beyond those running; more are refused. */
  readonly queue: number;
  /** Bytes of results kept, the least recently used dropped first. */
  readonly keepBytes?: number;
}

/** A compare's result: the page or JSON, and its gzip. */
export interface CompareBytes {
  readonly body: Buffer;
  readonly gzip: Buffer;
}

type Load = () => Promise<[BuildDetail, BuildDetail]>;
type Job = { kind: CompareKind; load: Load; resolve: (bytes: CompareBytes) => void; reject: (e: unknown) => void };

interface Slot {
  worker: Worker;
  /** The compare it is given (or whose builds are being read for it). */
  job?: Job & { seq: number; started: number };
}

@Injectable()
export class Comparer {
  private readonly kept = new Map<string, CompareBytes>();
  private keptBytes = 0;
  private readonly under = new Map<string, Promise<CompareBytes>>();
  private admitted = 0;
  private readonly slots: Slot[] = [];
  private readonly queued: Job[] = [];
  private seq = 0;
  private averageMs = 250;
  private closed = false;
  private readonly keepBytes: number;

  private readonly options: ComparerOptions;

  constructor(@Inject(CONFIG) config: { readonly compare: ComparerOptions }) {
    this.options = config.compare;
    this.keepBytes = config.compare.keepBytes ?? 64 * 1024 * 1024;
  }

  /**
   * The compare of builds `a` and `b` as `kind`: kept, under way for another request
   * (shared), or made now from the builds `load` reads (a failure of `load` is not kept).
   * `load` runs only once a worker is free for it, so that a burst of requests does not
   * read every build at once on the request thread. Throws CompareBusyError when the
   * queue is full.
   */
  async get(kind: CompareKind, a: string, b: string, load: Load): Promise<CompareBytes> {
    const key = `${kind} ${a} ${b}`;
    const kept = this.kept.get(key);
    if (kept !== undefined) {
      // Most recently used last: the Map's order is the eviction order.
      this.kept.delete(key);
      this.kept.set(key, kept);
      return kept;
    }
    const pending = this.under.get(key);
    if (pending) return pending;
    const workers = Math.max(1, this.options.workers);
    if (this.admitted >= workers + Math.max(0, this.options.queue)) {
      throw new CompareBusyError(Math.max(1, Math.ceil(((this.admitted / workers) * this.averageMs) / 1000)));
    }
    this.admitted++;
    const work = new Promise<CompareBytes>((resolve, reject) => {
      if (this.closed) return reject(new Error('the results-store is stopping'));
      this.queued.push({ kind, load, resolve, reject });
      this.pump();
    }).then((bytes) => {
      this.keep(key, bytes);
      return bytes;
    });
    this.under.set(key, work);
    try {
      return await work;
    } finally {
      this.admitted--;
      this.under.delete(key);
    }
  }

  /** Ends the workers; compares under way fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queued.splice(0)) job.reject(new Error('the results-store is stopping'));
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }

  private keep(key: string, bytes: CompareBytes): void {
    const size = bytes.body.length + bytes.gzip.length;
    if (size > this.keepBytes / 4) return;
    this.kept.set(key, bytes);
    this.keptBytes += size;
    for (const [k, v] of this.kept) {
      if (this.keptBytes <= this.keepBytes) break;
      this.kept.delete(k);
      this.keptBytes -= v.body.length + v.gzip.length;
    }
  }

  private pump(): void {
    while (this.queued.length && !this.closed) {
      let slot = this.slots.find((s) => !s.job);
      if (!slot && this.slots.length < Math.max(1, this.options.workers)) slot = this.spawn();
      if (!slot) return;
      const job = { ...this.queued.shift()!, seq: ++this.seq, started: performance.now() };
      const taken = slot;
      taken.job = job;
      job.load().then(
        ([a, b]) => {
          if (taken.job === job) taken.worker.postMessage({ seq: job.seq, kind: job.kind, a, b } satisfies CompareTask);
        },
        (e: unknown) => {
          if (taken.job !== job) return;
          taken.job = undefined;
          job.reject(e);
          this.pump();
        },
      );
    }
  }

  private spawn(): Slot {
    const { url, execArgv } = workerEntry(import.meta.url, 'compare-worker');
    const worker = new Worker(url, { ...(execArgv ? { execArgv } : {}), resourceLimits: { maxOldGenerationSizeMb: 512 } });
    // Idle workers must not keep a stopping process alive.
    worker.unref();
    const slot: Slot = { worker };
    worker.on('message', (reply: CompareReply) => {
      const job = slot.job;
      if (!job || job.seq !== reply.seq) return;
      slot.job = undefined;
      if ('body' in reply) {
        this.averageMs = this.averageMs * 0.8 + (performance.now() - job.started) * 0.2;
        job.resolve({
          body: Buffer.from(reply.body.buffer, reply.body.byteOffset, reply.body.byteLength),
          gzip: Buffer.from(reply.gzip.buffer, reply.gzip.byteOffset, reply.gzip.byteLength),
        });
      } else job.reject(new Error(`comparing builds: ${reply.error}`));
      this.pump();
    });
    const lost = (why: string) => {
      const index = this.slots.indexOf(slot);
      if (index < 0) return;
      this.slots.splice(index, 1);
      slot.job?.reject(new Error(`comparing builds: the worker thread ${why}`));
      slot.job = undefined;
      this.pump();
    };
    worker.on('error', (e) => lost(`failed: ${e.message}`));
    worker.on('exit', (code) => lost(`exited with ${code}`));
    this.slots.push(slot);
    return slot;
  }
}
