import { CancelledError } from '@cairn/sandbox';
import type { StepLog } from './step-log.js';

/**
 * Runs each step once however many builds ask for it at the same time.
 *
 * Every requester of a running step joins it and tails its log from the first byte. A
 * requester may cancel: it is answered at once with CancelledError, but the step itself
 * is killed only when every requester has cancelled. A request arriving while a step is
 * being cancelled waits for it to settle and then runs the step afresh. Every requester
 * gets what the work resolved to.
 */
export class SharedSteps<T = void> {
  private readonly jobs = new Map<string, Job<T>>();

  /**
   * Runs `work` for `key` unless it is already running, in which case this joins it.
   * `onLog` receives the step's log as soon as the work creates it.
   */
  async run(
    key: string,
    signal: AbortSignal | undefined,
    work: (signal: AbortSignal, publishLog: (log: StepLog) => void) => Promise<T>,
    onLog: (log: StepLog) => Promise<void>,
  ): Promise<T> {
    for (;;) {
      signal?.throwIfAborted();
      const existing = this.jobs.get(key);
      if (existing?.cancelling) {
        await existing.done.catch(() => undefined);
        continue;
      }
      const job = existing ?? this.start(key, work);
      return this.follow(job, signal, onLog);
    }
  }

  /** How many steps are running now. */
  get running(): number {
    return this.jobs.size;
  }

  private start(key: string, work: (signal: AbortSignal, publishLog: (log: StepLog) => void) => Promise<T>): Job<T> {
    const controller = new AbortController();
    let publish!: (log: StepLog) => void;
    const logReady = new Promise<StepLog>((resolve) => (publish = resolve));
    const job = { controller, requesters: 0, cancelling: false, logReady } as Job<T>;
    let log: StepLog | undefined;
    const publishLog = (l: StepLog) => {
      // Held until the job is over, so that a requester joining late can still read it.
      l.hold();
      log = l;
      publish(l);
    };
    job.done = work(controller.signal, publishLog).finally(async () => {
      if (this.jobs.get(key) === job) this.jobs.delete(key);
      await log?.release();
    });
    // Nobody may be listening when it fails (all cancelled); that is not an unhandled error.
    job.done.catch(() => undefined);
    this.jobs.set(key, job);
    return job;
  }

  private async follow(job: Job<T>, signal: AbortSignal | undefined, onLog: (log: StepLog) => Promise<void>): Promise<T> {
    job.requesters++;
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      if (--job.requesters === 0 && !job.cancelling) {
        job.cancelling = true;
        job.controller.abort();
      }
    };
    const cancelled = new Promise<never>((_, reject) => {
      const onAbort = () => {
        leave();
        reject(new CancelledError());
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
      job.done.finally(() => signal?.removeEventListener('abort', onAbort)).catch(() => undefined);
    });
    cancelled.catch(() => undefined);
    // The log is followed to its end even after the work settles, so no output is lost.
    const logged = Promise.race([
      job.logReady,
      job.done.then(
        () => undefined,
        () => undefined,
      ),
    ]).then((log) => (log ? onLog(log) : undefined));
    // The whole log first, then the outcome: a failing step's last words are in its log.
    return Promise.race([logged.then(() => job.done), cancelled]);
  }
}

interface Job<T> {
  readonly controller: AbortController;
  requesters: number;
  cancelling: boolean;
  readonly logReady: Promise<StepLog>;
  done: Promise<T>;
}
