/**
 * How the cluster commands reach the cluster: the NATS URL and credentials from flags
 * or CAIRN_* variables (else the cluster `cairn up` runs: cluster-file.ts), and the
 * client identity that NATS permissions pin to subjects.
 */
import { userInfo } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { busFromEnv, call, connectBus, TOKEN, type Reply } from '@cairn/contracts';
import { UserError } from '../cli-error.js';
import { readClusterFile } from './cluster-file.js';

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

export async function connectCluster(flags: ClusterFlags, client: string): Promise<NatsConnection> {
  const env = { ...process.env, ...(flags.nats === undefined ? {} : { CAIRN_NATS: flags.nats }) };
  if (env.CAIRN_NATS === undefined) {
    const up = readClusterFile(env);
    if (up) env.CAIRN_NATS = up.natsUrl;
  }
  const options = busFromEnv(`cairn-cli-${client}`, env);
  try {
    return await connectBus({ ...options, connectTimeoutMs: 5000, waitForServer: false, ...(options.user === undefined || options.inboxPrefix ? {} : { inboxPrefix: `_INBOX_${client}` }) });
  } catch (e) {
    throw new UnavailableError(`cannot reach NATS at ${[options.servers].flat().join(',')}: ${e instanceof Error ? e.message : String(e)} (start the cluster with "cairn up", or set --nats / CAIRN_NATS)`);
  }
}

/** A request whose rejection is the user's problem (exit 1) or the cluster's (exit 3). */
export async function request<T>(nc: NatsConnection, subject: string, data: unknown, timeoutMs = 10_000): Promise<T> {
  const reply: Reply<T> = await call<T>(nc, subject, data, { timeoutMs, retries: 2 });
  if (reply.ok) return reply.value;
  if (reply.error.code === 'unavailable' || reply.error.code === 'internal') throw new UnavailableError(reply.error.message);
  throw new UserError(`${reply.error.message} [${reply.error.code}]`);
}
