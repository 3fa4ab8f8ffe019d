import { CancelledError, LimitReachedError, StepFailedError, type RunOptions } from './sandbox.js';
import { LIMIT_POLL_MS } from './step-limits.js';

/**
 * Runs a step, stopping it once `atLimit` says it sits at its limit (a fork bomb at its
 * pids limit never ends by itself: each fork is refused, and it forks again), and fails a
 * step that stopped or failed there with `reason`. For drivers that read the use of a
 * limit from a command (rctl, pgrep) rather than from a cgroup's event counters.
 */
export async function runWatchingLimit(
  reason: string,
  atLimit: () => Promise<boolean>,
  options: RunOptions,
  run: (options: RunOptions) => Promise<void>,
): Promise<void> {
  const stop = new AbortController();
  // The poll in flight, awaited before returning: a read still running would otherwise
  // land after the caller's clean-up (rctl -u on a jail whose rules are being removed).
  let polling: Promise<void> | undefined;
  const watch = setInterval(() => {
    polling ??= atLimit()
      .then(
        (hit) => {
          if (hit && !stop.signal.aborted) stop.abort();
        },
        () => undefined,
      )
      .finally(() => (polling = undefined));
  }, LIMIT_POLL_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  try {
    await run({ ...options, signal });
  } catch (e) {
    if (e instanceof CancelledError && stop.signal.aborted && !options.signal?.aborted) throw new LimitReachedError(reason, null, 'SIGKILL');
    // A step that gave up on a refused fork: its children may still hold it at the limit.
    if (e instanceof StepFailedError && (await atLimit())) throw new LimitReachedError(reason, e.exitCode, e.signalName);
    throw e;
  } finally {
    clearInterval(watch);
    await polling;
  }
}
