/**
 * The JSON log lines of a real results-store process (main.ts serve): a line about a
 * stored result carries its job, worker, pool and client, and the trace ID its message
 * came with, as fields a log store selects by, not only inside the message text.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectBus, durablePublish, newTraceId, subjects } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { sampleResult, spawnResultsStore, type ResultsStoreProcess } from '../../../test/support/results-store.js';

describe('a results-store process logs JSON lines with the job fields', () => {
  let nats: RunningNats;
  let nc: NatsConnection;
  let dir: string;
  let store: ResultsStoreProcess;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectBus({ servers: nats.url, name: 'test-cluster' });
    dir = await mkdtemp(join(tmpdir(), 'cairn-rs-log-fields-'));
    store = await spawnResultsStore({
      CAIRN_NATS: nats.url,
      CAIRN_RESULTS_DIR: join(dir, 'data'),
      CAIRN_RESULTS_DB: join(dir, 'data', 'results.sqlite'),
      CAIRN_LOG_FORMAT: 'json',
    });
  });
  afterAll(async () => {
    await store?.stop();
    await nc?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('names the job, worker, pool, client and trace on the line of a stored result', async () => {
    const trace = newTraceId();
    const result = sampleResult({ name: 'logged', worker: 'w7', pool: 'pool-logs', client: 'carol' });
    await durablePublish(nc, subjects.result(result.pool), JSON.stringify(result), { msgId: result.job, trace });
    const stored = () =>
      store
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => typeof l.message === 'string' && l.message.startsWith(`stored cluster build ${result.job}`));
    await expect.poll(stored, { timeout: 60_000, interval: 100 }).toBeDefined();
    expect(stored()).toMatchObject({ service: 'results-store', level: 'log', job: result.job, worker: 'w7', pool: 'pool-logs', client: 'carol', trace });
  });
});
