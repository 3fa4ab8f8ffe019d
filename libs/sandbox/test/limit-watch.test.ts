import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { runWatchingLimit } from '../src/limit-watch.js';
import { CancelledError, LimitReachedError, type RunOptions } from '../src/sandbox.js';
import { LIMIT_POLL_MS } from '../src/step-limits.js';

const quiet: RunOptions = { onOutput: () => undefined };

describe('runWatchingLimit', () => {
  it('returns only once a read of the use still in flight has finished, so none lands after the clean-up', async () => {
    const events: string[] = [];
    const slowRead = async () => {
      events.push('read started');
      await sleep(LIMIT_POLL_MS * 2);
      events.push('read ended');
      return false;
    };
    // The step ends while the first read is running.
    await runWatchingLimit('pids limit 8 reached', slowRead, quiet, () => sleep(LIMIT_POLL_MS * 1.5));
    events.push('clean-up');
    await sleep(LIMIT_POLL_MS * 3);
    expect(events).toEqual(['read started', 'read ended', 'clean-up']);
  });

  it('reads one at a time when a read takes longer than the poll interval', async () => {
    let running = 0;
    let most = 0;
    const slowRead = async () => {
      most = Math.max(most, ++running);
      await sleep(LIMIT_POLL_MS * 2.5);
      running--;
      return false;
    };
    await runWatchingLimit('pids limit 8 reached', slowRead, quiet, () => sleep(LIMIT_POLL_MS * 6));
    expect(most).toBe(1);
  });

  it('stops a step whose read says it sits at its limit, failing it with the reason', async () => {
    // A step that runs until it is cancelled, as a fork bomb does.
    const untilCancelled = ({ signal }: RunOptions) => new Promise<void>((_, reject) => signal?.addEventListener('abort', () => reject(new CancelledError())));
    const failure = await runWatchingLimit('pids limit 8 reached', async () => true, quiet, untilCancelled).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LimitReachedError);
    expect((failure as Error).message).toBe('pids limit 8 reached');
  });
});
