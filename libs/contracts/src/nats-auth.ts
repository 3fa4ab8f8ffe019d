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
 * The JetStream API subjects below were found by watching what @nats-io/jetstream, /obj
 * and /kv 3.4 send against nats-server 2.9 for each flow (see test/e2e/permissions.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bcryptHash } from './bcrypt.js';
import { buckets, objectStores } from './streams.js';
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
const objectStream = (bucket: string) => `OBJ_${bucket}`;

/** Reading objects with @nats-io/obj: meta by sequence or subject, chunks through an ordered push consumer. */
function objectStoreRead(bucket: string): string[] {
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
function objectStoreWrite(bucket: string): string[] {
  return [`$O.${bucket}.C.>`, `$O.${bucket}.M.>`];
}

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
          // Uploading a context: check by meta subject whether it is already there (a direct
          // get names its subject, so only meta is readable: chunks by sequence, i.e. other
          // clients' contexts, are not), then write it. @nats-io/obj's put reads through
          // STREAM.MSG.GET, which reads any message, so clients upload without it.
          `$JS.API.DIRECT.GET.${objectStream(objectStores.contexts)}.$O.${objectStores.contexts}.M.>`,
          ...objectStoreWrite(objectStores.contexts),
        ],
        subscribe: [subjects.logsOfClient(name), inbox(name)],
        allowResponses: false,
      };
    case 'worker':
      return {
        publish: [
          subjects.toScheduler(name, ANY as WorkerVerb),
          // Log chunks of its jobs, published to the log stream with acks (to its inbox).
          subjects.log('*', '*'),
          '$JS.API.INFO',
          ...objectStoreRead(objectStores.contexts),
          `$JS.API.STREAM.INFO.${objectStream(objectStores.artifacts)}`,
          `$JS.API.STREAM.MSG.GET.${objectStream(objectStores.artifacts)}`,
          ...objectStoreWrite(objectStores.artifacts),
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
      // protocol, JetStream's API, every KV bucket and object store, and their own
      // (shared, default) inboxes.
      return {
        publish: ['cairn.v1.>', '$JS.API.>', '$KV.>', '$O.>', '$JS.ACK.>', '$JS.FC.>', '_INBOX.>'],
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

export interface NatsConfigOptions {
  readonly users: readonly NatsUser[];
  readonly passwordsDir: string;
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

function renderUser(user: NatsUser, hash: string): string {
  const p = natsPermissions(user);
  return `    # ${user.role} ${user.name}
    {
      user: ${quote(user.name)}
      password: ${quote(hash)}
      permissions: {
        publish: { allow: ${list(p.publish, '        ')} }
        subscribe: { allow: ${list(p.subscribe, '        ')} }${p.allowResponses ? '\n        allow_responses: true' : ''}
      }
    }`;
}

/** Makes (or reuses) every user's password under `passwordsDir` and renders the config with their hashes. */
export async function makeNatsAuth(options: NatsConfigOptions): Promise<NatsAuth> {
  const problem = natsUsersProblem(options.users);
  if (problem) throw new Error(problem);
  const { passwordsDir } = options;
  await mkdir(passwordsDir, { recursive: true, mode: 0o700 });
  await chmod(passwordsDir, 0o700);
  const passwords = new Map<string, string>();
  const hashes: string[] = [];
  for (const user of options.users) {
    const { file, password, reused } = await natsPassword(passwordsDir, user.name);
    passwords.set(user.name, password);
    hashes.push(bcryptHash(password, options.cost ?? 11));
    options.onPassword?.(user, file, reused);
  }
  const lines = [
    `# Cairn NATS config, written by ${options.writer ?? 'tools/nats-config.mjs: re-run it rather than editing'}.`,
    `# Passwords are bcrypt hashes; the clear ones are in ${passwordsDir}`,
  ];
  if (options.listen) lines.push(`listen: ${quote(options.listen)}`);
  lines.push(options.storeDir ? `jetstream {\n  store_dir: ${quote(options.storeDir)}\n}` : 'jetstream: enabled');
  lines.push(`authorization {\n  users: [\n${options.users.map((u, i) => renderUser(u, hashes[i]!)).join('\n')}\n  ]\n}`, '');
  return { config: lines.join('\n'), passwords };
}
