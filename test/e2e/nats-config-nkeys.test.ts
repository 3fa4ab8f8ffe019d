/**
 * tools/nats-config.mjs for clusters an operator deploys (compose, Kubernetes): users as
 * NKeys, each seed alone in a 0600 file that a service reads with
 * CAIRN_NATS_NKEY_SEED_FILE, with the same per-role permissions as the password form
 * (test/e2e/permissions.test.ts); and the cluster form of the config, checked by
 * nats-server itself.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busFromEnv, connectBus, ensureAll, subjects } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNats, type RunningNats } from '../support/nats.js';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;
const USERS = ['--service', 'svc', '--worker', 'linux-0', '--client', 'alice', '--nkeys'];

let work: string;
let seeds: string;
let nats: RunningNats;

async function connectWithSeed(name: string, inbox: boolean): Promise<NatsConnection> {
  const env = { CAIRN_NATS: nats.url, CAIRN_NATS_NKEY_SEED_FILE: join(seeds, `${name}.nk`), ...(inbox ? { CAIRN_NATS_INBOX: `_INBOX_${name}` } : {}) };
  return connectBus({ ...busFromEnv(`nkey-${name}`, env), waitForServer: false, connectTimeoutMs: 5000 });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cairn-nats-nkeys-'));
  seeds = join(work, 'seeds');
  await run(process.execPath, ['tools/nats-config.mjs', ...USERS, '--out', join(work, 'nats.conf'), '--passwords-dir', seeds], { cwd: ROOT });
  nats = await startNats({ config: await readFile(join(work, 'nats.conf'), 'utf8') });
}, 60_000);

afterAll(async () => {
  await nats?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('nats-config --nkeys', () => {
  it('lists public keys only; each seed is alone in a 0600 file, kept when run again', async () => {
    const config = await readFile(join(work, 'nats.conf'), 'utf8');
    const seed = (await readFile(join(seeds, 'svc.nk'), 'utf8')).trim();
    expect(seed).toMatch(/^SU[A-Z2-7]{56}$/);
    expect(config).not.toContain(seed);
    expect(config.match(/nkey: U[A-Z2-7]{55}/g)).toHaveLength(3);
    expect((await stat(join(seeds, 'svc.nk'))).mode & 0o777).toBe(0o600);
    await run(process.execPath, ['tools/nats-config.mjs', ...USERS, '--out', join(work, 'again.conf'), '--passwords-dir', seeds], { cwd: ROOT });
    expect(await readFile(join(work, 'again.conf'), 'utf8')).toBe(config);
  });

  it('lets the service log in with its seed and make the streams', async () => {
    const svc = await connectWithSeed('svc', false);
    try {
      await ensureAll(svc);
    } finally {
      await svc.close();
    }
  });

  it('lets a worker publish as itself but not as another worker', async () => {
    const worker = await connectWithSeed('linux-0', true);
    const svc = await connectWithSeed('svc', false);
    try {
      const errors: string[] = [];
      void (async () => {
        for await (const s of worker.status()) if (s.type === 'error') errors.push(String(s.error));
      })();
      const own = svc.subscribe(subjects.toScheduler('linux-0', 'heartbeat'), { max: 1 });
      await svc.flush();
      worker.publish(subjects.toScheduler('linux-0', 'heartbeat'), 'x');
      worker.publish(subjects.toScheduler('linux-1', 'heartbeat'), 'x');
      await worker.flush();
      for await (const m of own) expect(m.subject).toBe(subjects.toScheduler('linux-0', 'heartbeat'));
      await new Promise((r) => setTimeout(r, 200));
      expect(errors.join('\n')).toMatch(/permissions violation for publish.*linux-1/i);
    } finally {
      await worker.close();
      await svc.close();
    }
  });

  it('refuses a seed the config does not list', async () => {
    await run(process.execPath, ['tools/nats-config.mjs', '--client', 'mallory', '--nkeys', '--out', join(work, 'other.conf'), '--passwords-dir', seeds], {
      cwd: ROOT,
    });
    await expect(connectWithSeed('mallory', true)).rejects.toThrow(/authoriz/i);
  });
});

describe('nats-config --cluster', () => {
  it('writes a config nats-server accepts for each node, its name from the environment', async () => {
    const file = join(work, 'cluster.conf');
    const routes = [0, 1, 2].flatMap((i) => ['--route', `nats-route://cairn-nats-${i}.cairn-nats:6222`]);
    await run(
      process.execPath,
      [
        'tools/nats-config.mjs',
        ...USERS,
        '--monitor-port',
        '8222',
        '--cluster',
        'cairn',
        '--server-name',
        '$POD_NAME',
        ...routes,
        '--out',
        file,
        '--passwords-dir',
        seeds,
      ],
      { cwd: ROOT },
    );
    const config = await readFile(file, 'utf8');
    expect(config).toContain('server_name: $POD_NAME');
    expect(config).toContain('"nats-route://cairn-nats-2.cairn-nats:6222"');
    const checked = await run('/usr/sbin/nats-server', ['-c', file, '-t'], { env: { ...process.env, POD_NAME: 'cairn-nats-0' } });
    expect(checked.stdout + checked.stderr).toMatch(/is valid/);
  });

  it('refuses --cluster without its routes and name', async () => {
    const failed = await run(process.execPath, ['tools/nats-config.mjs', ...USERS, '--cluster', 'cairn', '--passwords-dir', seeds], { cwd: ROOT }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed).toMatchObject({ code: 2 });
    expect((failed as { stderr: string }).stderr).toContain('--cluster, --server-name and --route go together');
  });
});
