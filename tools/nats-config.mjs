#!/usr/bin/env node
/**
 * Writes the nats-server config for a Cairn cluster an operator runs: one user per
 * client, worker, admin and service, each allowed exactly the subjects of its role. The
 * roles, the password files and the config are @cairn/contracts' nats-auth.ts (which
 * `cairn up` uses for its own server); this is its command line (npm run build first).
 *
 *   node tools/nats-config.mjs --client alice --client bob --worker w1 --worker w2 \
 *     --admin ops --service svc [--out FILE] [--passwords-dir DIR] [--store-dir DIR] \
 *     [--listen HOST:PORT] [--cost N] [--nkeys] [--monitor-port 8222] \
 *     [--cluster NAME --server-name NAME|$VAR --route nats-route://HOST:6222 ...]
 *
 * Passwords go to DIR/NAME.password (0600, DIR 0700; default: nats-passwords beside
 * --out, or in the current directory) and are reused when the file exists; with
 * --nkeys each user is an NKey instead, its seed in DIR/NAME.nk (the services read it
 * with CAIRN_NATS_NKEY_SEED_FILE). Each identity connects with inbox prefix
 * `_INBOX_NAME` (CAIRN_NATS_INBOX); services use `_INBOX`. --cluster makes the config
 * one node's of a JetStream cluster (compose, Kubernetes: docs/deploy.md), with
 * --server-name `$POD_NAME` read by nats-server from its environment.
 */
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { makeNatsAuth, NATS_ROLES, natsUsersProblem } from '@cairn/contracts';

function usage(problem) {
  console.error(`nats-config: ${problem}
usage: node tools/nats-config.mjs (--client ID | --worker ID | --admin ID | --service ID)...
         [--out FILE] [--passwords-dir DIR] [--store-dir DIR] [--listen HOST:PORT] [--cost N]
         [--nkeys] [--monitor-port PORT] [--cluster NAME --server-name NAME --route URL...]`);
  process.exit(2);
}

function readOptions(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...Object.fromEntries(NATS_ROLES.map((role) => [role, { type: 'string', multiple: true, default: [] }])),
        out: { type: 'string' },
        'passwords-dir': { type: 'string' },
        'store-dir': { type: 'string' },
        listen: { type: 'string' },
        cost: { type: 'string', default: '11' },
        nkeys: { type: 'boolean', default: false },
        'monitor-port': { type: 'string' },
        cluster: { type: 'string' },
        'server-name': { type: 'string' },
        route: { type: 'string', multiple: true, default: [] },
      },
    }));
  } catch (e) {
    usage(e.message);
  }
  const users = NATS_ROLES.flatMap((role) => values[role].map((name) => ({ role, name })));
  const problem = natsUsersProblem(users);
  if (problem) usage(problem);
  const cost = Number(values.cost);
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) usage(`--cost must be an integer 4..31, not ${values.cost}`);
  const out = values.out === undefined ? undefined : resolve(values.out);
  const passwordsDir = resolve(values['passwords-dir'] ?? join(out ? dirname(out) : '.', 'nats-passwords'));
  const monitorPort = values['monitor-port'] === undefined ? undefined : Number(values['monitor-port']);
  if (monitorPort !== undefined && !(Number.isInteger(monitorPort) && monitorPort > 0 && monitorPort < 65536))
    usage(`--monitor-port must be a port number, not ${values['monitor-port']}`);
  if ((values.cluster === undefined) !== (values['server-name'] === undefined) || (values.cluster === undefined) !== (values.route.length === 0)) {
    usage('--cluster, --server-name and --route go together');
  }
  const cluster = values.cluster === undefined ? undefined : { name: values.cluster, serverName: values['server-name'], routes: values.route };
  return {
    users,
    out,
    passwordsDir,
    storeDir: values['store-dir'],
    listen: values.listen,
    cost,
    login: values.nkeys ? 'nkey' : 'password',
    ...(monitorPort === undefined ? {} : { monitorPort }),
    ...(cluster === undefined ? {} : { cluster }),
  };
}

const options = readOptions(process.argv.slice(2));
const { config } = await makeNatsAuth({
  ...options,
  onPassword: (user, file, reused) =>
    console.error(`nats-config: ${user.role} ${user.name}: ${options.login === 'nkey' ? 'NKey seed' : 'password'} ${reused ? 'kept' : 'written'} in ${file}`),
});
if (options.out) {
  await writeFile(options.out, config, { mode: 0o640 });
  console.error(`nats-config: wrote ${options.out}`);
} else {
  process.stdout.write(config);
}
