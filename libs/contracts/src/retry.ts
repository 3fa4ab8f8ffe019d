/**
 * Retrying with exponential backoff and jitter, for every loop that waits out NATS or a
 * service restarting. The jitter matters because failures come in crowds: a restart
 * fails every client at once, and without it they would all come back in lockstep.
 *
 *   for await (const attempt of attempts({ retries: 3 })) {
 *     try {
 *       return await work();
 *     } catch (e) {
 *       if (attempt === 3) throw e;
 *     }
 *   }
 *
 * A loop that waits in its own way (a wait another event can cut short, a message
 * redelivered later) takes only the delay: `backoffDelay(failures)`.
 */

export interface Backoff {
  /** The wait after the first failed attempt; it doubles after each further one. */
  readonly firstMs: number;
  /** No wait is longer. */
  readonly maxMs: number;
}

export const defaultBackoff: Backoff = { firstMs: 100, maxMs: 2000 };

/**
 * The wait after failed attempt number `attempt` (counting from 0): between half and all
 * of the capped exponential delay, so a wait is never shorter than half the plain one.
 */
export function backoffDelay(attempt: number, backoff: Backoff = defaultBackoff, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxMs, backoff.firstMs * 2 ** attempt);
  return ceiling / 2 + (random() * ceiling) / 2;
}

export interface AttemptOptions extends Partial<Backoff> {
  /** Further attempts after the first; without it there is no end to them. */
  readonly retries?: number;
  /** Once aborted, no attempt starts and a wait ends at once. */
  readonly signal?: AbortSignal;
}

/** Attempt numbers 0, 1, 2, ... with a backoff wait before each but the first; leave the loop when one succeeds. */
export async function* attempts(options: AttemptOptions = {}): AsyncGenerator<number, void, undefined> {
  const { retries = Infinity, signal, firstMs = defaultBackoff.firstMs, maxMs = defaultBackoff.maxMs } = options;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await sleep(backoffDelay(attempt - 1, { firstMs, maxMs }), signal);
    if (signal?.aborted) return;
    yield attempt;
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

/**
 * A failure that a NATS server restarting (or a JetStream still electing its leaders)
 * causes, which a later attempt will not meet: a request that timed out or found no
 * responder. A server without JetStream, a refused permission or a bad request is not
 * one: trying again would only hide it.
 */
export function isPassingBusFailure(e: unknown): boolean {
  const text = `${e instanceof Error ? e.name : ''} ${String(e)}`;
  if (/not enabled|permission|authori[sz]ation/i.test(text)) return false;
  return /timeout|timed out|no responders|503|temporarily unavailable|disconnect/i.test(text);
}

/**
 * `work` again and again while it fails only as a NATS restart makes things fail
 * (isPassingBusFailure), each failure said through `warn`; any other failure is thrown.
 * For what a service does once at start (making buckets, taking the leadership), where a
 * restart of NATS at the wrong moment must not end the process.
 */
export async function throughBusRestarts<T>(what: string, work: () => Promise<T>, warn: (message: string) => void, signal?: AbortSignal): Promise<T> {
  let last: unknown;
  for await (const attempt of attempts({ firstMs: 250, maxMs: 5000, ...(signal === undefined ? {} : { signal }) })) {
    try {
      return await work();
    } catch (e) {
      if (!isPassingBusFailure(e)) throw e;
      last = e;
      warn(`${what} failed (attempt ${attempt + 1}), trying again: ${String(e)}`);
    }
  }
  throw new Error(`${what}: stopped while trying (${String(last)})`);
}
