#!/usr/bin/env node
// Writes what the compose stack reads from $CAIRN_COMPOSE_CONFIG (default ./generated):
//   nats.conf                one config for the three JetStream nodes (tools/nats-config.mjs:
//                            a user per service, worker, client and admin, each with its role's
//                            permissions; the node's name from $SERVER_NAME)
//   passwords/NAME.password  each NATS user's password (0600; the services' own owned by
//                            the image's user 10001, which reads them)
//   postgres.password, results-db-url
// Run again, it keeps every password. npm run build first (nats-config uses @cairn/contracts).
//
//   node infra/compose/configure.mjs [--dir DIR] [--client NAME]... [--worker NAME]...
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const REPO = join(import.meta.dirname, '../..');
const SERVICE_UID = 10001; // the cairn user of infra/images/cairn.spec
const WORKERS = ['worker-linux-x86_64-1', 'worker-linux-x86_64-large-1'];

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: join(import.meta.dirname, 'generated') },
    client: { type: 'string', multiple: true, default: ['ci'] },
    worker: { type: 'string', multiple: true, default: [] },
  },
});
const dir = resolve(values.dir);
mkdirSync(dir, { recursive: true, mode: 0o700 });

execFileSync(
  process.execPath,
  [
    join(REPO, 'tools/nats-config.mjs'),
    '--service',
    'svc',
    '--admin',
    'ops',
    ...values.client.flatMap((c) => ['--client', c]),
    ...[...WORKERS, ...values.worker].flatMap((w) => ['--worker', w]),
    '--out',
    join(dir, 'nats.conf'),
    '--passwords-dir',
    join(dir, 'passwords'),
    '--store-dir',
    '/data',
    '--listen',
    '0.0.0.0:4222',
    '--monitor-port',
    '8222',
    '--cluster',
    'cairn',
    '--server-name',
    '$SERVER_NAME',
    ...[1, 2, 3].flatMap((n) => ['--route', `nats-route://nats-${n}:6222`]),
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);

const secret = (name, make) => {
  const file = join(dir, name);
  if (!existsSync(file)) writeFileSync(file, make(), { mode: 0o600 });
  return readFileSync(file, 'utf8');
};
const password = secret('postgres.password', () => randomBytes(18).toString('base64url'));
secret('results-db-url', () => `postgres://postgres:${encodeURIComponent(password)}@postgres:5432/cairn`);

// The services run as 10001 and read these through bind mounts; workers run as root.
if (process.getuid?.() === 0) {
  for (const file of [join(dir, 'passwords/svc.password'), join(dir, 'results-db-url')]) chownSync(file, SERVICE_UID, SERVICE_UID);
}
console.error(`compose config written in ${dir}`);
