/**
 * How the cluster commands reach the cluster: the NATS URL and credentials from flags
 * or CAIRN_* variables (else the cluster `cairn up` runs, with the password it keeps for
 * this client or its admin: cluster-file.ts), and the client identity that NATS
 * permissions pin to subjects.
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { busFromEnv, call, connectBus, passwordFile, TOKEN, type Reply } from '@cairn/contracts';
import { UserError } from '../cli-error.js';
import { readClusterFile, type ClusterFile } from './cluster-file.js';

export interface ClusterFlags {
  nats?: string;
  client?: string;
}

/** The cluster cannot be reached or did not answer: exit 3, so scripts can retry. */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
}

export function clientId(flags: ClusterFlags): string {
  const id = flags.client ?? process.env.CAIRN_CLIENT ?? safeUser();
  if (!TOKEN.test(id)) throw new UserError(`client ID "${id}" must be 1-64 letters, digits, '_' or '-' (--client or CAIRN_CLIENT)`);
  return id;
}

function safeUser(): string {
  try {
    return userInfo().username.replace(/[^A-Za-z0-9_-]/g, '_') || 'anonymous';
  } catch {
    return 'anonymous';
  }
}

/**
 * The user, password and inbox for cairn up's own NATS server, from the password file it
 * keeps for `user`; a UserError saying what to do when that file cannot be read (another
 * user's cairn up, or a client it was not started for).
 */
function upCredentials(up: ClusterFile & { natsPasswords: string }, user: string, as: 'client' | 'admin'): NodeJS.ProcessEnv {
  const file = passwordFile(up.natsPasswords, user);
  let password: string;
  try {
    password = readFileSync(file, 'utf8').trim();
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'there is none' : `it cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
    const remedy =
      as === 'admin'
        ? 'run cairn admin as the user who runs cairn up'
        : `start cairn up with --client ${user} and run this as a user who may read that file, or give credentials with CAIRN_NATS_USER and CAIRN_NATS_PASSWORD`;
    throw new UserError(
      `the NATS server of cairn up (${up.natsUrl}) lets in only the users it knows, by the passwords in ${up.natsPasswords}, and for ${as === 'admin' ? 'its admin' : `client ${user}`} ${why} (${file}): ${remedy}`,
    );
  }
  return { CAIRN_NATS_USER: user, CAIRN_NATS_PASSWORD: password, CAIRN_NATS_INBOX: `_INBOX_${user}` };
}

/**
 * Connects as `client` (or, for `as: 'admin'`, as cairn up's admin user). Credentials
 * given by CAIRN_NATS_USER win; otherwise, when the server is the one cairn up started
 * (named by --nats/CAIRN_NATS or found through the cluster file), its password file.
 */
export async function connectCluster(flags: ClusterFlags, client: string, as: 'client' | 'admin' = 'client'): Promise<NatsConnection> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...(flags.nats === undefined ? {} : { CAIRN_NATS: flags.nats }) };
  const up = readClusterFile(env);
  if (env.CAIRN_NATS === undefined && up) env.CAIRN_NATS = up.natsUrl;
  if (!env.CAIRN_NATS_USER && up?.natsPasswords !== undefined && env.CAIRN_NATS === up.natsUrl) {
    Object.assign(env, upCredentials({ ...up, natsPasswords: up.natsPasswords }, as === 'admin' ? (up.natsAdmin ?? 'cairn-admin') : client, as));
  }
  const options = busFromEnv(`cairn-cli-${client}`, env);
  const servers = [options.servers].flat().join(',');
  try {
    return await connectBus({
      ...options,
      connectTimeoutMs: 5000,
      waitForServer: false,
      ...(options.user === undefined || options.inboxPrefix ? {} : { inboxPrefix: `_INBOX_${client}` }),
    });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // Retrying cannot help: the answer is the credentials, so it is the user's to change (exit 1).
    if (/authori[sz]ation|authentication/i.test(message)) {
      throw new UserError(
        `NATS at ${servers} refused ${options.user === undefined ? 'a connection without credentials' : `user ${options.user}`} (${message}): set CAIRN_NATS_USER and CAIRN_NATS_PASSWORD (and CAIRN_NATS_INBOX=_INBOX_<user>) to a user of that server`,
      );
    }
    throw new UnavailableError(`cannot reach NATS at ${servers}: ${message} (start the cluster with "cairn up", or set --nats / CAIRN_NATS)`);
  }
}

/** A request whose rejection is the user's problem (exit 1) or the cluster's (exit 3). */
export async function request<T>(nc: NatsConnection, subject: string, data: unknown, timeoutMs = 10_000): Promise<T> {
  const reply: Reply<T> = await call<T>(nc, subject, data, { timeoutMs, retries: 2 });
  if (reply.ok) return reply.value;
  if (reply.error.code === 'unavailable' || reply.error.code === 'internal') throw new UnavailableError(reply.error.message);
  throw new UserError(`${reply.error.message} [${reply.error.code}]`);
}
