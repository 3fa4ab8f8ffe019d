import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answer, subjects, type LogChunk, type Requeue } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { followLog } from '../src/cluster/follow-log.js';
import { startNatsWithClient, type NatsWithClient } from '../../../test/support/nats.js';

/** `cairn logs` of a job whose first run was lost: the runs are told apart, with the reason. */
describe('followLog across attempts', () => {
  let bus: NatsWithClient;
  let nc: NatsConnection;

  beforeAll(async () => {
    bus = await startNatsWithClient('follow-log-test');
    ({ nc } = bus);
  }, 30_000);
  afterAll(async () => {
    await bus?.close();
  });

  const chunk = (attempt: number, seq: number, text: string, end?: LogChunk['end']): LogChunk => ({ job: 'j-1', attempt, seq, text, ...(end ? { end } : {}) });

  /** A scheduler stand-in that serves one page of stored chunks. */
  function serve(chunks: LogChunk[], requeues: Requeue[]) {
    return nc.subscribe(subjects.client('alice', 'logs'), {
      callback: (_e, msg) => void answer(msg, () => ({ ok: true, value: { chunks, more: false, cursor: chunks.length, state: 'succeeded', requeues } })),
    });
  }

  it('puts a separator line with the requeue reason between the runs, on a line of its own', async () => {
    const sub = serve(
      [chunk(1, 1, 'step 1 of run 1\npartial line'), chunk(2, 1, 'step 1 of run 2\n'), chunk(2, 2, 'done\n', 'succeeded')],
      [{ attempt: 1, reason: 'worker w1 stopped answering (no heartbeat for 3 s)', at: 1 }],
    );
    try {
      let text = '';
      const log = followLog(nc, 'alice', 'j-1', false);
      for (;;) {
        const next = await log.next();
        if (next.done) {
          expect(next.value).toBe('succeeded');
          break;
        }
        text += next.value.text;
      }
      expect(text).toBe(
        'step 1 of run 1\npartial line\n--- attempt 2 (requeued: worker w1 stopped answering (no heartbeat for 3 s)) ---\nstep 1 of run 2\ndone\n',
      );
    } finally {
      sub.unsubscribe();
    }
  });

  it("follows live only the chunks of the worker that ran the run, not chunks in another worker's subject", async () => {
    // The scheduler stand-in: nothing stored yet, the job running on w1 (its first run).
    const history = { attempts: 1, worker: 'w1', requeues: [] };
    const pages = nc.subscribe(subjects.client('alice', 'logs'), {
      callback: (_e, msg) => void answer(msg, () => ({ ok: true, value: { chunks: [], more: false, cursor: 0, state: 'running', ...history } })),
    });
    const status = nc.subscribe(subjects.client('alice', 'status'), {
      callback: (_e, msg) => void answer(msg, () => ({ ok: true, value: { job: 'j-00000002', state: 'running', ...history } })),
    });
    const publish = (worker: string, c: LogChunk) => nc.publish(subjects.log('alice', 'j-00000002', worker), JSON.stringify(c));
    try {
      const log = followLog(nc, 'alice', 'j-00000002', true);
      const first = log.next();
      await new Promise((r) => setTimeout(r, 200));
      const live = (attempt: number, seq: number, text: string, end?: LogChunk['end']): LogChunk => ({ ...chunk(attempt, seq, text, end), job: 'j-00000002' });
      publish('w1', live(1, 1, 'compiling\n'));
      publish('w9', live(1, 2, 'forged: all tests passed\n', 'succeeded'));
      publish('w9', live(2, 1, 'forged: a run that never was\n', 'succeeded'));
      publish('w1', live(1, 2, '3 tests failed\n', 'failed'));
      let text = '';
      for (let next = await first; ; next = await log.next()) {
        if (next.done) {
          expect(next.value).toBe('failed');
          break;
        }
        text += next.value.text;
      }
      expect(text).toBe('compiling\n3 tests failed\n');
    } finally {
      pages.unsubscribe();
      status.unsubscribe();
    }
  });
});
