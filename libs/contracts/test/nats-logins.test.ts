/**
 * The ways a service logs in to NATS (busFromEnv, for clusters an operator runs): user
 * and password read from files, an NKey seed file, a .creds file (operator mode, with
 * JWTs signed here by NKeys as `nsc` would), and a client certificate for a server that
 * verifies clients. Each against a real nats-server configured for it, and each also
 * refused without the right secret, so the test can fail.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busFromEnv, connectBus, settingFromEnv } from '../src/index.js';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { makeTestCa } from '../../../test/support/tls.js';

type KeyPair = ReturnType<typeof nkeys.createUser>;

let dir: string;
const at = (name: string) => join(dir, name);
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cairn-nats-logins-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Connects as `env` says, checks the connection works, closes it. */
async function login(nats: RunningNats, env: NodeJS.ProcessEnv, host = '127.0.0.1'): Promise<void> {
  const nc = await connectBus({
    ...busFromEnv('login-test', { CAIRN_NATS: `nats://${host}:${nats.port}`, ...env }),
    waitForServer: false,
    connectTimeoutMs: 5000,
  });
  try {
    await nc.flush();
  } finally {
    await nc.close();
  }
}

describe('user and password from files', () => {
  let nats: RunningNats;
  beforeAll(async () => {
    nats = await startNats({ config: 'authorization { users: [ { user: "svc", password: "s3cret-pw" } ] }\n' });
    await writeFile(at('user'), 'svc\n');
    await writeFile(at('password'), 's3cret-pw\n');
    await writeFile(at('wrong-password'), 'guess\n');
  });
  afterAll(() => nats?.stop());

  it('logs in with CAIRN_NATS_USER_FILE and CAIRN_NATS_PASSWORD_FILE', async () => {
    await login(nats, { CAIRN_NATS_USER_FILE: at('user'), CAIRN_NATS_PASSWORD_FILE: at('password') });
  });

  it('is refused with the wrong password', async () => {
    await expect(login(nats, { CAIRN_NATS_USER: 'svc', CAIRN_NATS_PASSWORD_FILE: at('wrong-password') })).rejects.toThrow(/authoriz/i);
  });
});

describe('an NKey seed file', () => {
  let nats: RunningNats;
  let user: KeyPair;
  beforeAll(async () => {
    user = nkeys.createUser();
    nats = await startNats({ config: `authorization { users: [ { nkey: ${user.getPublicKey()} } ] }\n` });
    await writeFile(at('user.nk'), `${new TextDecoder().decode(user.getSeed())}\n`, { mode: 0o600 });
    await writeFile(at('other.nk'), new TextDecoder().decode(nkeys.createUser().getSeed()), { mode: 0o600 });
  });
  afterAll(() => nats?.stop());

  it('logs in with CAIRN_NATS_NKEY_SEED_FILE', async () => {
    await login(nats, { CAIRN_NATS_NKEY_SEED_FILE: at('user.nk') });
  });

  it('is refused with a seed the server does not list', async () => {
    await expect(login(nats, { CAIRN_NATS_NKEY_SEED_FILE: at('other.nk') })).rejects.toThrow(/authoriz/i);
  });
});

const b64url = (data: string | Uint8Array) => Buffer.from(data).toString('base64url');

/** A NATS JWT (header, claims, ed25519 signature by `issuer`), as nsc makes them. */
function natsJwt(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));
  const claims = b64url(
    JSON.stringify({
      jti: b64url(nkeys.createUser().getPublicKey()).slice(0, 52),
      iat: Math.floor(Date.now() / 1000),
      iss: issuer.getPublicKey(),
      name,
      sub: subject,
      nats: { ...nats, version: 2 },
    }),
  );
  return `${header}.${claims}.${b64url(issuer.sign(new TextEncoder().encode(`${header}.${claims}`)))}`;
}

describe('a .creds file against a server in operator mode', () => {
  let nats: RunningNats;
  beforeAll(async () => {
    const operator = nkeys.createOperator();
    const account = nkeys.createAccount();
    const operatorJwt = natsJwt(operator, operator.getPublicKey(), 'cairn-op', { type: 'operator' });
    const limits = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
    const accountJwt = natsJwt(operator, account.getPublicKey(), 'cairn', { type: 'account', limits });
    // JetStream (startNats turns it on) needs a system account in operator mode.
    const system = nkeys.createAccount();
    const systemJwt = natsJwt(operator, system.getPublicKey(), 'SYS', { type: 'account', limits });
    const creds = (issuer: KeyPair) => {
      const user = nkeys.createUser();
      const jwt = natsJwt(issuer, user.getPublicKey(), 'svc', { type: 'user', pub: {}, sub: {}, subs: -1, data: -1, payload: -1 });
      const seed = new TextDecoder().decode(user.getSeed());
      return `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`;
    };
    await writeFile(at('svc.creds'), creds(account), { mode: 0o600 });
    // Signed by an account the server does not know.
    await writeFile(at('stranger.creds'), creds(nkeys.createAccount()), { mode: 0o600 });
    nats = await startNats({
      config: `operator: ${JSON.stringify(operatorJwt)}\nsystem_account: ${system.getPublicKey()}\nresolver: MEMORY\nresolver_preload: {\n  ${account.getPublicKey()}: ${JSON.stringify(accountJwt)}\n  ${system.getPublicKey()}: ${JSON.stringify(systemJwt)}\n}\n`,
    });
  });
  afterAll(() => nats?.stop());

  it('logs in with CAIRN_NATS_CREDS', async () => {
    await login(nats, { CAIRN_NATS_CREDS: at('svc.creds') });
  });

  it('is refused with a user of an account the server does not know', async () => {
    await expect(login(nats, { CAIRN_NATS_CREDS: at('stranger.creds') })).rejects.toThrow(/authoriz/i);
  });
});

describe('a client certificate for a server that verifies clients', () => {
  let nats: RunningNats;
  beforeAll(async () => {
    const { sign } = makeTestCa(dir);
    await sign('server', 'localhost', 'subjectAltName=DNS:localhost\n');
    await sign('client', 'cairn-scheduler', 'extendedKeyUsage=clientAuth\n');
    nats = await startNats({
      config: `tls {\n  cert_file: ${JSON.stringify(at('server.pem'))}\n  key_file: ${JSON.stringify(at('server.key'))}\n  ca_file: ${JSON.stringify(at('ca.pem'))}\n  verify: true\n}\n`,
    });
  }, 60_000);
  afterAll(() => nats?.stop());

  it('connects with CAIRN_NATS_CA, CAIRN_NATS_CERT and CAIRN_NATS_KEY', async () => {
    await login(nats, { CAIRN_NATS_CA: at('ca.pem'), CAIRN_NATS_CERT: at('client.pem'), CAIRN_NATS_KEY: at('client.key') }, 'localhost');
  });

  it('is refused without a client certificate', async () => {
    await expect(login(nats, { CAIRN_NATS_CA: at('ca.pem') }, 'localhost')).rejects.toThrow();
  });
});

describe('login settings that cannot work', () => {
  it('names the setting whose file cannot be read, never a secret', () => {
    expect(() => busFromEnv('x', { CAIRN_NATS_CREDS: '/nonexistent/svc.creds' })).toThrow('CAIRN_NATS_CREDS=/nonexistent/svc.creds: cannot read it (ENOENT)');
    expect(() => busFromEnv('x', { CAIRN_NATS_USER: 'svc', CAIRN_NATS_PASSWORD_FILE: '/nonexistent/pw' })).toThrow(
      'CAIRN_NATS_PASSWORD_FILE=/nonexistent/pw: cannot read it (ENOENT)',
    );
  });

  it('refuses two ways to log in, a value given twice, and a certificate without its key', async () => {
    await writeFile(at('svc.creds.dummy'), 'x');
    expect(() => busFromEnv('x', { CAIRN_NATS_USER: 'svc', CAIRN_NATS_CREDS: at('svc.creds.dummy') })).toThrow(
      'CAIRN_NATS_USER and CAIRN_NATS_CREDS are both set: give one way to log in to NATS',
    );
    expect(() => busFromEnv('x', { CAIRN_NATS_USER: 'svc', CAIRN_NATS_USER_FILE: at('svc.creds.dummy') })).toThrow(
      'CAIRN_NATS_USER and CAIRN_NATS_USER_FILE are both set: give one of them',
    );
    expect(() => busFromEnv('x', { CAIRN_NATS_CERT: at('svc.creds.dummy') })).toThrow('CAIRN_NATS_CERT and CAIRN_NATS_KEY go together');
  });

  it('reads a setting from its _FILE without the final newline, and refuses an empty file', async () => {
    await writeFile(at('db-url'), 'postgres://cairn:pw@db/cairn\n');
    await writeFile(at('empty'), '\n');
    expect(settingFromEnv({ CAIRN_RESULTS_DB_FILE: at('db-url') }, 'CAIRN_RESULTS_DB')).toBe('postgres://cairn:pw@db/cairn');
    expect(settingFromEnv({ CAIRN_RESULTS_DB: 'x.sqlite' }, 'CAIRN_RESULTS_DB')).toBe('x.sqlite');
    expect(settingFromEnv({}, 'CAIRN_RESULTS_DB')).toBeUndefined();
    expect(() => settingFromEnv({ CAIRN_RESULTS_DB_FILE: at('empty') }, 'CAIRN_RESULTS_DB')).toThrow(`CAIRN_RESULTS_DB_FILE=${at('empty')}: the file is empty`);
  });
});
