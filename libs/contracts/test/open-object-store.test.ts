import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, objectStores, openObjectStore } from '../src/index.js';
import { startNats, type RunningNats } from '../../../test/support/nats.js';

const ROOT = join(import.meta.dirname, '../../..');

describe('openObjectStore under NATS permissions', () => {
  let nats: RunningNats;
  let dir: string;
  const password = (name: string) => readFile(join(dir, 'pw', `${name}.password`), 'utf8').then((p) => p.trim());

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-objstore-'));
    const made = spawnSync(process.execPath, ['tools/nats-config.mjs', '--worker', 'w1', '--service', 'svc', '--out', join(dir, 'nats.conf'), '--passwords-dir', join(dir, 'pw')], { cwd: ROOT });
    expect(made.status, made.stderr.toString()).toBe(0);
    nats = await startNats({ config: await readFile(join(dir, 'nats.conf'), 'utf8') });
  });

  afterAll(async () => {
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a worker that may not create the store waits for the services to make it, instead of failing', async () => {
    const worker = await connectBus({ servers: nats.url, name: 'w1', user: 'w1', pass: await password('w1'), inboxPrefix: '_INBOX_w1' });
    const waits: string[] = [];
    const opening = openObjectStore(worker, objectStores.contexts, (m) => waits.push(m));
    let opened = false;
    void opening.then(() => (opened = true));
    await new Promise((r) => setTimeout(r, 800));
    expect(opened).toBe(false);
    expect(waits[0]).toMatch(/object store cairn-contexts does not exist yet.*waiting for the services/);
    const service = await connectBus({ servers: nats.url, name: 'svc', user: 'svc', pass: await password('svc') });
    await openObjectStore(service, objectStores.contexts);
    const store = await opening;
    expect((await store.status()).bucket).toBe(objectStores.contexts);
    await worker.close();
    await service.close();
  });
});
