import { describe, expect, it } from 'vitest';
import { LogWriters, parseLogSubject, subjects, writerOf, type RunHistory } from '../src/index.js';

describe("whose log chunks are a job's log", () => {
  const history: RunHistory = {
    attempts: 3,
    worker: 'w3',
    requeues: [
      { attempt: 1, reason: 'lost', at: 0, worker: 'w1' },
      { attempt: 2, reason: 'lost', at: 0 },
    ],
  };

  it('names the worker of each run: lost runs from the requeues, the last from the job', () => {
    expect([1, 2, 3, 4].map((a) => writerOf(history, a))).toEqual(['w1', undefined, 'w3', undefined]);
  });

  it('reads client, job and worker from a log subject and nothing from another subject', () => {
    expect(parseLogSubject(subjects.log('alice', 'j-00000001', 'w1'))).toEqual({ client: 'alice', job: 'j-00000001', worker: 'w1' });
    expect(parseLogSubject('cairn.v1.logs.alice.j-00000001')).toBeUndefined();
    expect(parseLogSubject(subjects.toScheduler('w1', 'complete'))).toBeUndefined();
  });

  it('asks for the history of a run it does not know, spaced, and keeps what it learnt', async () => {
    const asked: number[] = [];
    let current: RunHistory = { attempts: 1, worker: 'w1' };
    const writers = new LogWriters(async () => {
      asked.push(Date.now());
      return current;
    });
    const subject = (w: string) => subjects.log('alice', 'j-00000001', w);
    expect(await writers.wrote(subject('w1'), 1)).toBe(true);
    expect(await writers.wrote(subject('w9'), 1)).toBe(false);
    expect(asked).toHaveLength(1);
    // A made-up run, many times: each lookup waits its turn.
    const made = await Promise.all(Array.from({ length: 3 }, (_, i) => writers.wrote(subject('w9'), 5 + i)));
    expect(made).toEqual([false, false, false]);
    expect(asked.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < asked.length; i++) expect(asked[i]! - asked[i - 1]!).toBeGreaterThanOrEqual(240);
    // The job is requeued onto w2: its second run is w2's, its first still w1's.
    current = { attempts: 2, worker: 'w2', requeues: [{ attempt: 1, reason: 'lost', at: 0, worker: 'w1' }] };
    expect(await writers.wrote(subject('w2'), 2)).toBe(true);
    expect(await writers.wrote(subject('w1'), 1)).toBe(true);
    expect(await writers.wrote(subject('w1'), 2)).toBe(false);
    expect(await writers.wrote('cairn.v1.sched.w2.complete', 2)).toBe(false);
  });
});
