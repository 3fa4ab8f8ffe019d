#!/usr/bin/env node
/**
 * Writes the nats-server config for a Cairn cluster: JetStream on, one user per client,
 * worker, admin and service, each allowed exactly the subjects of its role, so that a
 * client cannot speak for another client or a worker, nor read another client's logs.
 *
 *   node tools/nats-config.mjs --client alice --client bob --worker w1 --worker w2 \
 *     --admin ops --service svc [--out FILE] [--passwords-dir DIR] [--store-dir DIR] \
 *     [--listen HOST:PORT] [--cost N]
 *
 * Each user's password is random, written alone to DIR/NAME.password (0600, DIR 0700;
 * default: nats-passwords beside --out, or in the current directory), and reused when
 * that file already exists, so adding a user rotates nobody else. The config holds only
 * bcrypt hashes of them, which nats-server 2.9 checks at connect. Each identity must
 * connect with inbox prefix `_INBOX_NAME` (CAIRN_NATS_INBOX); services use the default
 * `_INBOX`. The subjects come from the built @cairn/contracts (npm run build first).
 *
 * The JetStream API subjects below were found by watching what @nats-io/jetstream, /obj
 * and /kv 3.4 send against nats-server 2.9 for each flow (see test/e2e/permissions.test.ts).
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { objectStores, subjects, TOKEN } from '@cairn/contracts';
import { bcryptHash } from './bcrypt.mjs';

const inbox = (name) => `_INBOX_${name}.>`;
const objectStream = (bucket) => `OBJ_${bucket}`;

/** Reading objects with @nats-io/obj: meta by sequence or subject, chunks through an ordered push consumer. */
function objectStoreRead(bucket) {
  const stream = objectStream(bucket);
  return [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    // Flow-control replies of the push consumer that delivers a large object's chunks.
    `$JS.FC.${stream}.>`,
  ];
}

/**
 * Writing objects: chunks, then the meta message, each acknowledged by JetStream to the
 * writer's inbox. No purge: a writer must not replace an existing name (objects are
 * content-addressed, so one that exists is already right), because purge could erase any
 * object's chunks.
 */
function objectStoreWrite(bucket) {
  return [`$O.${bucket}.C.>`, `$O.${bucket}.M.>`];
}

/**
 * What each role may publish and subscribe to. `allowResponses` lets a user answer the
 * requests it receives (on the requester's inbox) without publish rights to any inbox.
 */
const ROLES = {
  client: (c) => ({
    publish: [
      subjects.compile,
      subjects.schedulerKey,
      subjects.client(c, '>'),
      // Uploading a context: check by meta subject whether it is already there (a direct
      // get names its subject, so only meta is readable: chunks by sequence, i.e. other
      // clients' contexts, are not), then write it. @nats-io/obj's put reads through
      // STREAM.MSG.GET, which reads any message, so clients upload without it.
      `$JS.API.DIRECT.GET.${objectStream(objectStores.contexts)}.$O.${objectStores.contexts}.M.>`,
      ...objectStoreWrite(objectStores.contexts),
    ],
    subscribe: [subjects.logsOfClient(c), inbox(c)],
    allowResponses: false,
  }),
  worker: (w) => ({
    publish: [
      subjects.toScheduler(w, '>'),
      // Log chunks of its jobs, published to the log stream with acks (to its inbox).
      subjects.log('*', '*'),
      '$JS.API.INFO',
      ...objectStoreRead(objectStores.contexts),
      `$JS.API.STREAM.INFO.${objectStream(objectStores.artifacts)}`,
      `$JS.API.STREAM.MSG.GET.${objectStream(objectStores.artifacts)}`,
      ...objectStoreWrite(objectStores.artifacts),
    ],
    subscribe: [subjects.toWorker(w, '>'), inbox(w)],
    allowResponses: true,
  }),
  admin: (a) => ({
    publish: [subjects.admin('>'), subjects.client('*', 'status'), subjects.client('*', 'logs')],
    subscribe: [subjects.jobEventsAll, subjects.logsAll, inbox(a)],
    allowResponses: false,
  }),
  // The scheduler, spec-compiler and results-store: the whole protocol, JetStream's API,
  // every KV bucket and object store, and their own (shared, default) inboxes.
  service: () => ({
    publish: ['cairn.v1.>', '$JS.API.>', '$KV.>', '$O.>', '$JS.ACK.>', '$JS.FC.>', '_INBOX.>'],
    subscribe: ['cairn.v1.>', '_INBOX.>'],
    allowResponses: true,
  }),
};

function usage(problem) {
  console.error(`nats-config: ${problem}
usage: node tools/nats-config.mjs (--client ID | --worker ID | --admin ID | --service ID)...
         [--out FILE] [--passwords-dir DIR] [--store-dir DIR] [--listen HOST:PORT] [--cost N]`);
  process.exit(2);
}

function readOptions(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        client: { type: 'string', multiple: true, default: [] },
        worker: { type: 'string', multiple: true, default: [] },
        admin: { type: 'string', multiple: true, default: [] },
        service: { type: 'string', multiple: true, default: [] },
        out: { type: 'string' },
        'passwords-dir': { type: 'string' },
        'store-dir': { type: 'string' },
        listen: { type: 'string' },
        cost: { type: 'string', default: '11' },
      },
    }));
  } catch (e) {
    usage(e.message);
  }
  const users = Object.keys(ROLES).flatMap((role) => values[role].map((name) => ({ role, name })));
  if (users.length === 0) usage('name at least one user');
  const seen = new Set();
  for (const { role, name } of users) {
    if (!TOKEN.test(name)) usage(`${role} ${JSON.stringify(name)}: an ID is 1-64 letters, digits, '_' or '-'`);
    // The name is also the user and the inbox prefix: two roles cannot share one.
    if (seen.has(name)) usage(`${JSON.stringify(name)} is named twice`);
    seen.add(name);
  }
  const cost = Number(values.cost);
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) usage(`--cost must be an integer 4..31, not ${values.cost}`);
  const out = values.out === undefined ? undefined : resolve(values.out);
  const passwordsDir = resolve(values['passwords-dir'] ?? join(out ? dirname(out) : '.', 'nats-passwords'));
  return { users, out, passwordsDir, storeDir: values['store-dir'], listen: values.listen, cost };
}

/** The user's password: the one in its file if there is one, else a new one written there. */
async function passwordOf(dir, name) {
  const file = join(dir, `${name}.password`);
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    if (existing) return { file, password: existing, reused: true };
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
  const password = randomBytes(24).toString('base64url');
  await writeFile(file, `${password}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return { file, password, reused: false };
}

const quote = (s) => JSON.stringify(s);
const list = (items, indent) => `[\n${items.map((s) => `${indent}  ${quote(s)}`).join('\n')}\n${indent}]`;

function renderUser({ role, name }, hash) {
  const p = ROLES[role](name);
  return `    # ${role} ${name}
    {
      user: ${quote(name)}
      password: ${quote(hash)}
      permissions: {
        publish: { allow: ${list(p.publish, '        ')} }
        subscribe: { allow: ${list(p.subscribe, '        ')} }${p.allowResponses ? '\n        allow_responses: true' : ''}
      }
    }`;
}

function renderConfig(options, hashes) {
  const lines = [
    '# Cairn NATS config, written by tools/nats-config.mjs: re-run it rather than editing.',
    '# Passwords are bcrypt hashes; the clear ones are in ' + options.passwordsDir,
  ];
  if (options.listen) lines.push(`listen: ${quote(options.listen)}`);
  lines.push(options.storeDir ? `jetstream {\n  store_dir: ${quote(options.storeDir)}\n}` : 'jetstream: enabled');
  lines.push(`authorization {\n  users: [\n${options.users.map((u, i) => renderUser(u, hashes[i])).join('\n')}\n  ]\n}`, '');
  return lines.join('\n');
}

const options = readOptions(process.argv.slice(2));
await mkdir(options.passwordsDir, { recursive: true, mode: 0o700 });
await chmod(options.passwordsDir, 0o700);
const hashes = [];
for (const user of options.users) {
  const { file, password, reused } = await passwordOf(options.passwordsDir, user.name);
  hashes.push(bcryptHash(password, options.cost));
  console.error(`nats-config: ${user.role} ${user.name}: password ${reused ? 'kept' : 'written'} in ${file}`);
}
const config = renderConfig(options, hashes);
if (options.out) {
  await writeFile(options.out, config, { mode: 0o640 });
  console.error(`nats-config: wrote ${options.out}`);
} else {
  process.stdout.write(config);
}
