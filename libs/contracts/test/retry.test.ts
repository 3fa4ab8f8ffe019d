import { describe, expect, it } from 'vitest';
import { TimeoutError } from '@nats-io/transport-node';
import { attempts, backoffDelay, isPassingBusFailure, throughBusRestarts } from '../src/index.js';

describe('backoffDelay', () => {
  it('doubles from the first wait up to the cap, jittered between half and all of it', () => {
    const backoff = { firstMs: 100, maxMs: 2000 };
    expect([0, 1, 2, 3, 4, 5, 30].map((n) => backoffDelay(n, backoff, () => 0))).toEqual([50, 100, 200, 400, 800, 1000, 1000]);
    expect([0, 1, 2, 3, 4, 5, 30].map((n) => backoffDelay(n, backoff, () => 0.999_999))).toEqual(
      [100, 200, 400, 800, 1600, 2000, 2000].map((d) => expect.closeTo(d, 2)),
    );
  });

  it('spreads the waits of clients that failed together', () => {
    const waits = new Set(Array.from({ length: 50 }, () => backoffDelay(3)));
    expect(waits.size).toBeGreaterThan(40);
    for (const wait of waits) {
      expect(wait).toBeGreaterThanOrEqual(400);
      expect(wait).toBeLessThanOrEqual(800);
    }
  });
});

describe('attempts', () => {
  it('counts the first attempt and then the retries, waiting between them', async () => {
    const seen: number[] = [];
    const started = Date.now();
    for await (const attempt of attempts({ retries: 3, firstMs: 20, maxMs: 20 })) seen.push(attempt);
    expect(seen).toEqual([0, 1, 2, 3]);
    // Three waits of at least half of 20 ms each.
    expect(Date.now() - started).toBeGreaterThanOrEqual(29);
  });

  it('goes on until the loop is left when no retries are given', async () => {
    let last = -1;
    for await (const attempt of attempts({ firstMs: 1, maxMs: 1 })) {
      last = attempt;
      if (attempt === 6) break;
    }
    expect(last).toBe(6);
  });

  it('stops at once when aborted, in a wait too', async () => {
    const teardown = new AbortController();
    const seen: number[] = [];
    const started = Date.now();
    setTimeout(() => teardown.abort(), 50);
    for await (const attempt of attempts({ firstMs: 60_000, signal: teardown.signal })) seen.push(attempt);
    expect(seen).toEqual([0]);
    expect(Date.now() - started).toBeLessThan(5_000);

    const none: number[] = [];
    for await (const attempt of attempts({ signal: teardown.signal })) none.push(attempt);
    expect(none).toEqual([]);
  });
});

describe('throughBusRestarts', () => {
  it('tries again while the failures are those of a NATS restart, and says each', async () => {
    const failures = [new TimeoutError(), new Error('503 no responders available for request'), new Error('JetStream system temporarily unavailable')];
    const said: string[] = [];
    let calls = 0;
    const value = await throughBusRestarts(
      'opening a bucket',
      async () => {
        const failure = failures[calls++];
        if (failure) throw failure;
        return 'opened';
      },
      (m) => said.push(m),
    );
    expect(value).toBe('opened');
    expect(calls).toBe(4);
    expect(said).toHaveLength(3);
    expect(said[0]).toMatch(/^opening a bucket failed \(attempt 1\), trying again: .*timeout/i);
  });

  it('throws at once a failure that trying again would only hide', async () => {
    for (const reason of ['jetstream is not enabled', 'Permissions Violation for Publish to "$JS.API.STREAM.CREATE.x"', 'stream name is required']) {
      let calls = 0;
      const tried = throughBusRestarts(
        'making the streams',
        async () => {
          calls++;
          throw new Error(reason);
        },
        () => undefined,
      );
      await expect(tried).rejects.toThrow(reason);
      expect(calls).toBe(1);
      expect(isPassingBusFailure(new Error(reason))).toBe(false);
    }
  });

  it('stops trying when its signal is aborted', async () => {
    const stop = new AbortController();
    const tried = throughBusRestarts(
      'taking the leadership',
      async () => {
        stop.abort();
        throw new TimeoutError();
      },
      () => undefined,
      stop.signal,
    );
    await expect(tried).rejects.toThrow(/taking the leadership: stopped while trying/);
  });
});
