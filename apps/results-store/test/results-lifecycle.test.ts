import { describe, expect, it } from 'vitest';
import { Ops } from '@cairn/service-kit';
import { ResultsLifecycle } from '../src/results-lifecycle.js';

/**
 * The lifecycle around a result consumer whose first starts fail, as a JetStream request
 * does when it times out on a loaded machine or while a NATS cluster elects its leaders
 * (what kept the compose stack's results-store unready for good in CI): everything else
 * is a stand-in that does nothing.
 */
function lifecycleWith(consumer: { start(): Promise<void>; stop(): Promise<void> }) {
  const ops = new Ops();
  const idle = {
    start: () => undefined,
    stop: async () => undefined,
    idle: async () => undefined,
    close: async () => undefined,
    closeAll: () => undefined,
    watch: () => undefined,
  };
  const lifecycle = new ResultsLifecycle(
    consumer as never,
    idle as never,
    idle as never,
    idle as never,
    { list: async function* () {} } as never,
    { storageBytes: { set: () => undefined }, blobs: { set: () => undefined } } as never,
    ops,
    { isInitialized: false, query: async () => [] } as never,
    { retentionIntervalMs: 0, retention: { keepLast: 0 } } as never,
    { log: () => undefined, warn: () => undefined, error: () => undefined },
    idle as never,
    idle as never,
    idle as never,
    { httpAdapter: { getHttpServer: () => undefined } } as never,
    idle as never,
    idle as never,
  );
  return { lifecycle, ops };
}

describe('the results-store lifecycle', () => {
  it('is ready when its start returns if the result consumer starts at the first attempt', async () => {
    let starts = 0;
    const consumer = { start: async () => void starts++, stop: async () => undefined };
    const { lifecycle, ops } = lifecycleWith(consumer);
    await lifecycle.onApplicationBootstrap();
    expect(starts).toBe(1);
    expect((await ops.health('ready')).checks['results-consumer']).toBe('ok');
    await lifecycle.beforeApplicationShutdown();
  });

  it('starts the result consumer again after a failed start, unready until it has started', async () => {
    let starts = 0;
    const consumer = {
      start: async () => {
        starts++;
        if (starts <= 2) throw new Error('TimeoutError: timeout');
      },
      stop: async () => undefined,
    };
    const { lifecycle, ops } = lifecycleWith(consumer);
    await lifecycle.onApplicationBootstrap();
    const deadline = Date.now() + 20_000;
    while ((await ops.health('ready')).checks['results-consumer'] !== 'ok' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(starts).toBe(3);
    expect((await ops.health('ready')).checks['results-consumer']).toBe('ok');
    await lifecycle.beforeApplicationShutdown();
  });

  it('stops trying when it shuts down', async () => {
    let starts = 0;
    const consumer = {
      start: async () => {
        starts++;
        throw new Error('TimeoutError: timeout');
      },
      stop: async () => undefined,
    };
    const { lifecycle, ops } = lifecycleWith(consumer);
    await lifecycle.onApplicationBootstrap();
    expect((await ops.health('ready')).checks['results-consumer']).not.toBe('ok');
    await lifecycle.beforeApplicationShutdown();
    const after = starts;
    await new Promise((r) => setTimeout(r, 1500));
    expect(starts).toBe(after);
  });
});
