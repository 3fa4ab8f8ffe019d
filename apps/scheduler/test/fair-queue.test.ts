import { describe, expect, it } from 'vitest';
import { FairQueue } from '../src/core/fair-queue.js';

const ref = (job: string, client = 'alice', urgent = false) => ({ job, client, urgent });

/** Takes the first candidate `n` times; returns the jobs taken. */
function takeFirst(q: FairQueue, n: number): string[] {
  const taken: string[] = [];
  for (let i = 0; i < n; i++) {
    const next = q.candidates().next();
    if (next.done) break;
    q.take(next.value);
    taken.push(next.value.job);
  }
  return taken;
}

describe('FairQueue with long queues', () => {
  it('serves a long queue in order while jobs are taken from the front, put back in front and cancelled in the middle', () => {
    const q = new FairQueue(() => 1);
    const jobs = Array.from({ length: 3000 }, (_, i) => `j${i}`);
    for (const job of jobs) q.push(ref(job));
    // Past the point where the taken front is dropped from the array.
    expect(takeFirst(q, 2000)).toEqual(jobs.slice(0, 2000));
    q.push(ref('requeued'), true);
    expect(q.remove(ref('j2500'))).toBe(true);
    expect(q.remove(ref('j2500'))).toBe(false);
    expect(q.remove(ref('j10'))).toBe(false); // taken already
    expect(q.length).toBe(1000);
    expect([...q.candidates(3)].map((r) => r.job)).toEqual(['requeued', 'j2000', 'j2001']);
    expect(takeFirst(q, 1000)).toEqual(['requeued', ...jobs.slice(2000).filter((j) => j !== 'j2500')]);
    expect(q.length).toBe(0);
  });

  it('alternates two clients by rate however long the queue of one of them', () => {
    const q = new FairQueue((client) => (client === 'bob' ? 2 : 1));
    for (let i = 0; i < 2000; i++) q.push(ref(`a${i}`));
    for (let i = 0; i < 4; i++) q.push(ref(`b${i}`, 'bob'));
    expect(takeFirst(q, 6)).toEqual(['a0', 'b0', 'b1', 'a1', 'b2', 'b3']);
  });
});
