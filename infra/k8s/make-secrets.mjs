#!/usr/bin/env node
/**
 * Writes the secrets an overlay's kustomization reads, into OVERLAY/secrets/ (which git
 * ignores), and OVERLAY/secrets/kustomization.yaml that makes Secrets of them:
 *
 *   cairn-nats-config    nats.conf: tools/nats-config.mjs's config for a 3-node cluster,
 *                        users as NKeys with their role's permissions
 *   cairn-service-seeds  one NKey seed per service (scheduler.nk, spec-compiler.nk, ...)
 *   cairn-worker-seeds   one NKey seed per worker pod (POD.nk; the pod's name is its ID)
 *   cairn-scheduler-key  scheduler.key: the key clients seal build secrets to
 *   cairn-results-db     url: the results-store's PostgreSQL URL
 *   cairn-postgres       password (--postgres-in-cluster only: the dev database's)
 *
 *   node infra/k8s/make-secrets.mjs OVERLAY --workers STATEFULSET=REPLICAS...
 *        (--postgres-in-cluster | --database-url-file FILE)
 *        [--client NAME]... [--admin NAME]... [--nats-replicas 3]
 *
 * Run again, it keeps every seed, key and password it finds (adding a worker or a client
 * rotates nobody). Client and admin seeds stay in OVERLAY/secrets/nats-seeds for the
 * operator to hand out (CAIRN_NATS_NKEY_SEED_FILE); no Secret carries them.
 * npm run build first (it uses @cairn/contracts).
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { exportPrivateKey, generateKeyPair, makeNatsAuth } from '@cairn/contracts';

const SERVICES = ['scheduler', 'spec-compiler', 'results-store', 'base-image-builder'];

function usage(problem) {
  console.error(`make-secrets: ${problem}
usage: node infra/k8s/make-secrets.mjs OVERLAY --workers STATEFULSET=REPLICAS...
         (--postgres-in-cluster | --database-url-file FILE) [--client NAME]... [--admin NAME]... [--nats-replicas N]`);
  process.exit(2);
}

function readOptions(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        workers: { type: 'string', multiple: true, default: [] },
        client: { type: 'string', multiple: true, default: [] },
        admin: { type: 'string', multiple: true, default: [] },
        'postgres-in-cluster': { type: 'boolean', default: false },
        'database-url-file': { type: 'string' },
        'nats-replicas': { type: 'string', default: '3' },
      },
    });
  } catch (e) {
    usage(e.message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) usage('name one overlay directory');
  if (values['postgres-in-cluster'] === (values['database-url-file'] !== undefined)) usage('give one of --postgres-in-cluster and --database-url-file');
  const workers = values.workers.flatMap((spec) => {
    const m = /^([a-z0-9-]+)=(\d+)$/.exec(spec);
    if (!m) usage(`--workers ${spec}: expected STATEFULSET=REPLICAS`);
    return Array.from({ length: Number(m[2]) }, (_, i) => `${m[1]}-${i}`);
  });
  if (workers.length === 0) usage('name the worker StatefulSets and their replicas with --workers');
  const natsReplicas = Number(values['nats-replicas']);
  if (!Number.isInteger(natsReplicas) || natsReplicas < 1) usage(`--nats-replicas must be a positive integer, not ${values['nats-replicas']}`);
  return {
    overlay: resolve(positionals[0]),
    workers,
    clients: values.client,
    admins: values.admin,
    inCluster: values['postgres-in-cluster'],
    databaseUrlFile: values['database-url-file'],
    natsReplicas,
  };
}

/** The file's contents if it exists, else `make()`'s, written there (0600). */
async function kept(file, make) {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
  const text = make();
  await writeFile(file, text, { mode: 0o600 });
  return text;
}

const options = readOptions(process.argv.slice(2));
const dir = join(options.overlay, 'secrets');
const seeds = join(dir, 'nats-seeds');
await mkdir(dir, { recursive: true, mode: 0o700 });

const users = [
  ...SERVICES.map((name) => ({ role: 'service', name })),
  ...options.workers.map((name) => ({ role: 'worker', name })),
  ...options.clients.map((name) => ({ role: 'client', name })),
  ...options.admins.map((name) => ({ role: 'admin', name })),
];
const routes = Array.from({ length: options.natsReplicas }, (_, i) => `nats-route://cairn-nats-${i}.cairn-nats:6222`);
const { config } = await makeNatsAuth({
  users,
  passwordsDir: seeds,
  login: 'nkey',
  monitorPort: 8222,
  cluster: { name: 'cairn', serverName: '$POD_NAME', routes },
  writer: 'infra/k8s/make-secrets.mjs: re-run it rather than editing',
});
await writeFile(join(dir, 'nats.conf'), config, { mode: 0o600 });
await kept(join(dir, 'scheduler.key'), () => exportPrivateKey(generateKeyPair().privateKey));
if (options.inCluster) {
  const password = await kept(join(dir, 'postgres-password'), () => randomBytes(24).toString('base64url'));
  await writeFile(join(dir, 'results-db-url'), `postgres://cairn:${password.trim()}@cairn-postgres:5432/cairn`, { mode: 0o600 });
} else {
  await copyFile(options.databaseUrlFile, join(dir, 'results-db-url'));
}

const secret = (name, files) => `  - name: ${name}\n    files:\n${files.map((f) => `      - ${f}`).join('\n')}`;
const generators = [
  secret('cairn-nats-config', ['nats.conf']),
  secret(
    'cairn-service-seeds',
    SERVICES.map((s) => `nats-seeds/${s}.nk`),
  ),
  secret(
    'cairn-worker-seeds',
    options.workers.map((w) => `nats-seeds/${w}.nk`),
  ),
  secret('cairn-scheduler-key', ['scheduler.key']),
  secret('cairn-results-db', ['url=results-db-url']),
  ...(options.inCluster ? [secret('cairn-postgres', ['password=postgres-password'])] : []),
];
await writeFile(
  join(dir, 'kustomization.yaml'),
  `# Written by infra/k8s/make-secrets.mjs; run it again rather than editing.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: cairn\nsecretGenerator:\n${generators.join('\n')}\n`,
);
console.error(`make-secrets: wrote ${dir} (${users.length} NATS users; ${options.workers.length} worker seeds)`);
