import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { RejectedError } from '@cairn/contracts';
import { DEFAULT_CONFIG } from '../src/core/scheduler-core.js';
import { SchedulerService } from '../src/scheduler.service.js';

describe('the scheduler before its stored state is loaded', () => {
  // Nest serves the subjects before onModuleInit has loaded the state: nothing of the
  // bus, the ops or the log reader is needed to refuse, so none is given.
  const scheduler = new SchedulerService(
    null as never,
    { ...DEFAULT_CONFIG, keyFile: '/nonexistent', keepFinishedMs: 1000 },
    null as never,
    null,
    null as never,
  );
  const codeOf = (operation: () => unknown) => {
    try {
      operation();
    } catch (e) {
      return e instanceof RejectedError ? e.code : String(e);
    }
    return 'answered';
  };

  it('answers every operation "unavailable", so that callers retry instead of hearing from an empty scheduler', async () => {
    const lease = { worker: 'w1', job: 'j-1', lease: 'l' };
    expect(codeOf(() => scheduler.publicKey())).toBe('unavailable');
    expect(codeOf(() => scheduler.status('alice', 'j-1'))).toBe('unavailable');
    expect(codeOf(() => scheduler.cancel('alice', 'j-1'))).toBe('unavailable');
    expect(codeOf(() => scheduler.heartbeat({ worker: 'w1', running: [], freeBytes: 1, refusing: false, hints: [] }))).toBe('unavailable');
    expect(codeOf(() => scheduler.started(lease.worker, lease.job, lease.lease))).toBe('unavailable');
    expect(codeOf(() => scheduler.pools())).toBe('unavailable');
    expect(codeOf(() => scheduler.workers())).toBe('unavailable');
    expect(codeOf(() => scheduler.setRate('alice', 2))).toBe('unavailable');
    await expect(
      scheduler.submit({
        client: 'alice',
        pool: 'p',
        name: 'n',
        spec: '((from busybox))',
        urgent: false,
        secrets: [],
        outputs: [],
        timeoutSeconds: 60,
        cacheHint: 'h',
        steps: 1,
      }),
    ).rejects.toMatchObject({ code: 'unavailable' });
    await expect(
      scheduler.complete({ ...lease, outcome: { state: 'succeeded', steps: [], artifacts: [], platform: 'x', startedAt: 1, finishedAt: 2 } }),
    ).rejects.toMatchObject({ code: 'unavailable' });
    await expect(scheduler.logs('alice', 'j-1', 0)).rejects.toMatchObject({ code: 'unavailable' });
  });
});
