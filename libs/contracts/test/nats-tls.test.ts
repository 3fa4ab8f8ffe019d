/**
 * NATS over TLS with a cluster's own CA (docs/security.md): a nats-server with a `tls {}`
 * block, and busFromEnv reading CAIRN_NATS=tls://... and CAIRN_NATS_CA as every service
 * and the CLI do.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busFromEnv, connectBus } from '../src/index.js';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { makeTestCa } from '../../../test/support/tls.js';

describe('NATS over TLS', () => {
  let nats: RunningNats;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-nats-tls-'));
    const at = (name: string) => join(dir, name);
    await makeTestCa(dir).sign('server', 'localhost', 'subjectAltName=DNS:localhost\n');
    nats = await startNats({ config: `tls {\n  cert_file: ${JSON.stringify(at('server.pem'))}\n  key_file: ${JSON.stringify(at('server.key'))}\n}\n` });
  }, 60_000);

  afterAll(async () => {
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // By host name, which the certificate names: given an IP address, nats.js upgrades the
  // socket without a server name and Node then checks the certificate for "localhost".
  it('connects with CAIRN_NATS=tls://HOST:PORT and CAIRN_NATS_CA naming the CA', async () => {
    const nc = await connectBus({
      ...busFromEnv('tls-test', { CAIRN_NATS: `tls://localhost:${nats.port}`, CAIRN_NATS_CA: join(dir, 'ca.pem') }),
      waitForServer: false,
      connectTimeoutMs: 5000,
    });
    try {
      expect(nc.info?.tls_required).toBe(true);
      await nc.flush();
    } finally {
      await nc.close();
    }
  });

  it('refuses the server without the CA: its certificate is not trusted', async () => {
    const attempt = connectBus({ ...busFromEnv('tls-test', { CAIRN_NATS: `tls://localhost:${nats.port}` }), waitForServer: false, connectTimeoutMs: 5000 });
    await expect(attempt).rejects.toThrow(/certificate/i);
  });
});
