/**
 * Connecting to NATS and making sure the JetStream streams, buckets and object stores
 * exist with the settings in streams.ts. Every service calls `ensureJetStream` at start;
 * it is idempotent, so whichever starts first creates them.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { buckets, objectStores, streams } from './streams.js';

export interface BusOptions {
  readonly servers: string | string[];
  /** Shown in the server's connection list. */
  readonly name: string;
  readonly user?: string;
  readonly pass?: string;
  /** Per-identity inbox prefix, so NATS permissions can keep replies private (see nats-auth.ts). */
  readonly inboxPrefix?: string;
  /**
   * PEM file of the CA that signed the server's TLS certificate, when it is not one Node
   * trusts already (a cluster's own CA). TLS itself needs nothing: the client upgrades
   * when the server requires it.
   */
  readonly tlsCaFile?: string;
  /** Give up connecting at start after this long (reconnects later never give up). */
  readonly connectTimeoutMs?: number;
  /**
   * Services wait for a server that is not up yet; a command line fails at once
   * instead, so that the user hears about it.
   */
  readonly waitForServer?: boolean;
}

export async function connectBus(options: BusOptions): Promise<NatsConnection> {
  return connect({
    servers: options.servers,
    name: options.name,
    ...(options.user === undefined ? {} : { user: options.user, pass: options.pass ?? '' }),
    ...(options.inboxPrefix === undefined ? {} : { inboxPrefix: options.inboxPrefix }),
    ...(options.tlsCaFile === undefined ? {} : { tls: { caFile: options.tlsCaFile } }),
    timeout: options.connectTimeoutMs ?? 10_000,
    // A restarting NATS server must not take services down with it.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: options.waitForServer ?? true,
    // Without this the client builds an Error with a stack trace for every request, a
    // quarter of a busy scheduler's CPU (bench/scheduler-throughput.ts --profile).
    noAsyncTraces: true,
  });
}

/** Bus settings from the environment, as every service and the CLI read them. */
export function busFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): BusOptions {
  return {
    servers: (env.CAIRN_NATS ?? 'nats://127.0.0.1:4222').split(','),
    name,
    ...(env.CAIRN_NATS_USER ? { user: env.CAIRN_NATS_USER, pass: env.CAIRN_NATS_PASSWORD ?? '' } : {}),
    ...(env.CAIRN_NATS_INBOX ? { inboxPrefix: env.CAIRN_NATS_INBOX } : {}),
    ...(env.CAIRN_NATS_CA ? { tlsCaFile: env.CAIRN_NATS_CA } : {}),
  };
}

const DAY_NS = 24 * 3600 * 1e9;

export async function ensureJetStream(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const s of [streams.logs, streams.results]) {
    const config = {
      name: s.name,
      subjects: [...s.subjects],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      max_age: s.maxAgeDays * DAY_NS,
      // Readers fetch a job's chunks by subject with direct gets (no consumer per reader).
      allow_direct: true,
      ...('duplicateWindowMinutes' in s ? { duplicate_window: s.duplicateWindowMinutes * 60 * 1e9 } : {}),
    };
    try {
      await jsm.streams.info(s.name);
      await jsm.streams.update(s.name, config);
    } catch {
      try {
        await jsm.streams.add(config);
      } catch (e) {
        // Another service created it between our two calls.
        if (!String(e).includes('already in use')) throw e;
      }
    }
  }
}

export async function openBucket(nc: NatsConnection, name: (typeof buckets)[keyof typeof buckets]): Promise<KV> {
  return new Kvm(nc).create(name, { history: 1, storage: StorageType.File });
}

/**
 * Creates the object store if needed; a worker, whose NATS user may not create streams,
 * opens the one the services made — waiting for it when the worker started first (a
 * cluster whose processes start together), as services wait for NATS itself.
 */
export async function openObjectStore(
  nc: NatsConnection,
  name: (typeof objectStores)[keyof typeof objectStores],
  onWait: (message: string) => void = () => undefined,
): Promise<ObjectStore> {
  try {
    return await new Objm(nc).create(name, { storage: StorageType.File });
  } catch (e) {
    if (!/permission/i.test(String(e))) throw e;
  }
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Objm(nc).open(name);
    } catch (e) {
      if (!/not found/i.test(String(e))) throw e;
      if (attempt === 0) onWait(`object store ${name} does not exist yet and this user may not create it; waiting for the services to make it`);
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
    }
  }
}

/** What the services create at start: streams, buckets and object stores. */
export async function ensureAll(nc: NatsConnection): Promise<void> {
  await ensureJetStream(nc);
  for (const bucket of Object.values(buckets)) await openBucket(nc, bucket);
  for (const store of Object.values(objectStores)) await openObjectStore(nc, store);
}
