/**
 * The nats-server config of a Cairn cluster: JetStream on, one user per client, worker,
 * admin and service, each allowed exactly the subjects of its role, so that a client
 * cannot speak for another client or a worker, nor read another client's logs. Written
 * by tools/nats-config.mjs for clusters an operator runs and by `cairn up` for its own.
 *
 * Each user's password is random, written alone to DIR/NAME.password (0600, DIR 0700),
 * and reused when that file already exists, so adding a user rotates nobody else and
 * processes that hold a password keep working across a restart. The config holds only
 * bcrypt hashes of them, which nats-server 2.9 checks at connect. Each identity but a
 * service must connect with inbox prefix `_INBOX_NAME` (natsInbox); services use the
 * default `_INBOX`.
 *
 * The JetStream API subjects below were found by watching what @nats-io/jetstream and /kv
 * 3.4 send against nats-server 2.9 for each flow (see test/e2e/permissions.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { nkeys } from '@nats-io/transport-node';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bcryptHash } from './bcrypt.js';
import { blobStores, buckets, type BlobStoreName } from './streams.js';
import { subjects, TOKEN, type AdminVerb, type AgentVerb, type ClientVerb, type WorkerVerb } from './subjects.js';

export type NatsRole = 'client' | 'worker' | 'admin' | 'service';
export const NATS_ROLES: readonly NatsRole[] = ['client', 'worker', 'admin', 'service'];

export interface NatsUser {
  readonly role: NatsRole;
  readonly name: string;
}

export interface NatsPermissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
  /** Lets a user answer the requests it receives (on the requester's inbox) without publish rights to any inbox. */
  readonly allowResponses: boolean;
}

/** The inbox prefix `user` must connect with; undefined for services, which share the default `_INBOX`. */
export function natsInbox(user: NatsUser): string | undefined {
  return user.role === 'service' ? undefined : `_INBOX_${user.name}`;
}

/** A wildcard in the place of a verb: permissions cover every verb of the role. */
const ANY = '>';
const inbox = (name: string) => `_INBOX_${name}.>`;
/** Reading the newest meta message of one's own blobs: whether a blob is stored already (blob-store.ts). */
const ownBlobCheck = (store: BlobStoreName, owner: string) => `$JS.API.DIRECT.GET.${blobStores[store].stream}.${subjects.blobsOf(store, owner)}.m.*`;
/** Writing one's own blobs: chunks and meta, each acknowledged to the writer's inbox. The stream refuses purge and rollup. */
const ownBlobWrite = (store: BlobStoreName, owner: string) => `${subjects.blobsOf(store, owner)}.>`;

/**
 * Reading one KV bucket with @nats-io/kv (open, keys, get) and nothing else: operators
 * see what `cairn up` supervises (`cairn admin services`) without rights to any other
 * bucket, where job records hold sealed secrets and every client's specs.
 */
function bucketRead(bucket: string): string[] {
  const stream = `KV_${bucket}`;
  return [
    '$JS.API.INFO',
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    // keys(): an ordered consumer, deleted when done.
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.INFO.${stream}.>`,
    `$JS.API.CONSUMER.DELETE.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

/** What each role may publish and subscribe to. */
export function natsPermissions({ role, name }: NatsUser): NatsPermissions {
  switch (role) {
    case 'client':
      return {
        publish: [
          subjects.compile,
          subjects.schedulerKey,
          subjects.client(name, ANY as ClientVerb),
          // Its own contexts only: nobody else's can be read, replaced or pre-empted.
          ownBlobCheck('contexts', name),
          ownBlobWrite('contexts', name),
        ],
        subscribe: [subjects.logsOfClient(name), inbox(name)],
        allowResponses: false,
      };
    case 'worker':
      return {
        publish: [
          subjects.toScheduler(name, ANY as WorkerVerb),
          // Log chunks under its own name only (readers keep the chunks of the attempt's worker).
          subjects.log('*', '*', name),
          '$JS.API.INFO',
          // Any client's context (a worker runs every client's jobs), by direct get.
          `$JS.API.DIRECT.GET.${blobStores.contexts.stream}`,
          // Artifacts under its own name only: the results-store reads a job's from the worker that ran it.
          ownBlobCheck('artifacts', name),
          ownBlobWrite('artifacts', name),
        ],
        subscribe: [subjects.toWorker(name, ANY as AgentVerb), inbox(name)],
        allowResponses: true,
      };
    case 'admin':
      return {
        publish: [subjects.admin(ANY as AdminVerb), subjects.client('*', 'status'), subjects.client('*', 'logs'), ...bucketRead(buckets.services)],
        subscribe: [subjects.jobEventsAll, subjects.logsAll, inbox(name)],
        allowResponses: false,
      };
    case 'service':
      // The scheduler, spec-compiler, results-store and `cairn up` itself: the whole
      // protocol (blob stores included), JetStream's API, every KV bucket, and their own
      // (shared, default) inboxes.
      return {
        publish: ['cairn.v1.>', '$JS.API.>', '$KV.>', '$JS.ACK.>', '$JS.FC.>', '_INBOX.>'],
        subscribe: ['cairn.v1.>', '_INBOX.>'],
        allowResponses: true,
      };
  }
}

/** Why this list of users cannot be one config, or undefined when it can. */
export function natsUsersProblem(users: readonly NatsUser[]): string | undefined {
  if (users.length === 0) return 'name at least one user';
  const seen = new Set<string>();
  for (const { role, name } of users) {
    if (!TOKEN.test(name)) return `${role} ${JSON.stringify(name)}: an ID is 1-64 letters, digits, '_' or '-'`;
    // The name is also the user and the inbox prefix: two roles cannot share one.
    if (seen.has(name)) return `${JSON.stringify(name)} is named twice`;
    seen.add(name);
  }
  return undefined;
}

export const passwordFile = (dir: string, name: string) => join(dir, `${name}.password`);

/** The user's password: the one in its file if there is one, else a new one written there. */
export async function natsPassword(dir: string, name: string): Promise<{ file: string; password: string; reused: boolean }> {
  const file = passwordFile(dir, name);
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    if (existing) return { file, password: existing, reused: true };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const password = randomBytes(24).toString('base64url');
  await writeFile(file, `${password}\n`, { mode: 0o600 });
  // The mode given to writeFile passes through the umask, and an existing empty file keeps its own.
  await chmod(file, 0o600);
  return { file, password, reused: false };
}

/**
 * A NATS cluster this server is one node of (compose, Kubernetes): JetStream replicates
 * streams across the nodes that `routes` name.
 */
export interface NatsClusterOptions {
  readonly name: string;
  /** nats-route://HOST:6222 of every node (this one included: the server skips itself). */
  readonly routes: readonly string[];
  /** The cluster port's HOST:PORT; default 0.0.0.0:6222. */
  readonly listen?: string;
  /**
   * This node's name, unique in the cluster; may be a nats-server variable such as
   * `$POD_NAME` (read from its environment), so that one config serves every replica.
   */
  readonly serverName: string;
}

export interface NatsConfigOptions {
  readonly users: readonly NatsUser[];
  /** Where each user's secret is kept (NAME.password, or NAME.nk with `login: 'nkey'`). */
  readonly passwordsDir: string;
  /**
   * How users prove who they are: a password (the config holds its bcrypt hash) or an
   * NKey (the config holds the public key; the user keeps its seed, CAIRN_NATS_NKEY_SEED_FILE).
   */
  readonly login?: 'password' | 'nkey';
  readonly cluster?: NatsClusterOptions;
  /** nats-server's monitoring port (/healthz for probes, /varz for exporters); off when unset. */
  readonly monitorPort?: number;
  /** JetStream's store; default: nats-server's own. */
  readonly storeDir?: string;
  /** HOST:PORT; default: nats-server's own (or its -a/-p flags). */
  readonly listen?: string;
  /** bcrypt's cost (4..31). */
  readonly cost?: number;
  /** Who writes it and when, for the config's first line. */
  readonly writer?: string;
  /** Called once per user, after its password is read or made. */
  readonly onPassword?: (user: NatsUser, file: string, reused: boolean) => void;
}

export interface NatsAuth {
  readonly config: string;
  /** Each user's clear password, by name. */
  readonly passwords: ReadonlyMap<string, string>;
}

const quote = (s: string) => JSON.stringify(s);
const list = (items: readonly string[], indent: string) => `[\n${items.map((s) => `${indent}  ${quote(s)}`).join('\n')}\n${indent}]`;

/** `credential`: the user and its password hash, or its NKey. */
function renderUser(user: NatsUser, credential: string): string {
  const p = natsPermissions(user);
  return `    # ${user.role} ${user.name}
    {
      ${credential}
      permissions: {
        publish: { allow: ${list(p.publish, '        ')} }
        subscribe: { allow: ${list(p.subscribe, '        ')} }${p.allowResponses ? '\n        allow_responses: true' : ''}
      }
    }`;
}

export const nkeySeedFile = (dir: string, name: string) => join(dir, `${name}.nk`);

/** The user's NKey: the seed in its file if there is one, else a new one written there. */
export async function natsNkey(dir: string, name: string): Promise<{ file: string; publicKey: string; reused: boolean }> {
  const file = nkeySeedFile(dir, name);
  let seed: string | undefined;
  try {
    seed = (await readFile(file, 'utf8')).trim() || undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (seed !== undefined) {
    try {
      return { file, publicKey: nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey(), reused: true };
    } catch (e) {
      throw new Error(`${file}: not an NKey seed (${(e as Error).message})`, { cause: e });
    }
  }
  const pair = nkeys.createUser();
  await writeFile(file, `${new TextDecoder().decode(pair.getSeed())}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return { file, publicKey: pair.getPublicKey(), reused: false };
}

function renderCluster(cluster: NatsClusterOptions): string[] {
  return [
    `server_name: ${cluster.serverName.startsWith('$') ? cluster.serverName : quote(cluster.serverName)}`,
    `cluster {\n  name: ${quote(cluster.name)}\n  listen: ${quote(cluster.listen ?? '0.0.0.0:6222')}\n  routes: ${list(cluster.routes, '  ')}\n}`,
  ];
}

/**
 * Makes (or reuses) every user's password or NKey under `passwordsDir` and renders the
 * config with their hashes or public keys.
 */
export async function makeNatsAuth(options: NatsConfigOptions): Promise<NatsAuth> {
  const problem = natsUsersProblem(options.users);
  if (problem) throw new Error(problem);
  const { passwordsDir } = options;
  const login = options.login ?? 'password';
  await mkdir(passwordsDir, { recursive: true, mode: 0o700 });
  await chmod(passwordsDir, 0o700);
  const passwords = new Map<string, string>();
  const credentials: string[] = [];
  for (const user of options.users) {
    if (login === 'nkey') {
      const { file, publicKey, reused } = await natsNkey(passwordsDir, user.name);
      credentials.push(`nkey: ${publicKey}`);
      options.onPassword?.(user, file, reused);
      continue;
    }
    const { file, password, reused } = await natsPassword(passwordsDir, user.name);
    passwords.set(user.name, password);
    credentials.push(`user: ${quote(user.name)}\n      password: ${quote(bcryptHash(password, options.cost ?? 11))}`);
    options.onPassword?.(user, file, reused);
  }
  const lines = [
    `# Cairn NATS config, written by ${options.writer ?? 'tools/nats-config.mjs: re-run it rather than editing'}.`,
    login === 'nkey' ? `# Users are NKeys; their seeds are in ${passwordsDir}` : `# Passwords are bcrypt hashes; the clear ones are in ${passwordsDir}`,
  ];
  if (options.listen) lines.push(`listen: ${quote(options.listen)}`);
  if (options.monitorPort !== undefined) lines.push(`http_port: ${options.monitorPort}`);
  if (options.cluster) lines.push(...renderCluster(options.cluster));
  lines.push(options.storeDir ? `jetstream {\n  store_dir: ${quote(options.storeDir)}\n}` : 'jetstream: enabled');
  lines.push(`authorization {\n  users: [\n${options.users.map((u, i) => renderUser(u, credentials[i]!)).join('\n')}\n  ]\n}`, '');
  return { config: lines.join('\n'), passwords };
}
