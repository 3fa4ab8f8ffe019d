/**
 * Connecting to NATS and making sure the JetStream streams (blob stores among them) and
 * buckets exist with the settings in streams.ts. Every service calls `ensureJetStream` at start;
 * it is idempotent, so whichever starts first creates them.
 */
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, nkeyAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { blobStores, buckets, streams, type BlobStoreName } from './streams.js';
import { readSettingFile, settingFromEnv } from './settings.js';
import { subjects } from './subjects.js';

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
  /** Client certificate and its key (PEM files), for a server that verifies clients. */
  readonly tlsCertFile?: string;
  readonly tlsKeyFile?: string;
  /**
   * A `.creds` file (user JWT and NKey seed, as `nsc` writes it) for a server in operator
   * mode. Read again at every (re)connect, so a rotated file is picked up.
   */
  readonly credsFile?: string;
  /** A file holding an NKey user seed (`SU...`), for a server that lists users by public key. */
  readonly nkeySeedFile?: string;
  /** Give up connecting at start after this long (reconnects later never give up). */
  readonly connectTimeoutMs?: number;
  /**
   * Services wait for a server that is not up yet; a command line fails at once
   * instead, so that the user hears about it.
   */
  readonly waitForServer?: boolean;
}

/**
 * The nats.js connection options of `options`: the bus's own connection and the one
 * Nest's NATS transport opens (service-kit) log in the same way.
 */
export function natsConnectionOptions(options: BusOptions): ConnectionOptions {
  const tls = {
    ...(options.tlsCaFile === undefined ? {} : { caFile: options.tlsCaFile }),
    ...(options.tlsCertFile === undefined ? {} : { certFile: options.tlsCertFile }),
    ...(options.tlsKeyFile === undefined ? {} : { keyFile: options.tlsKeyFile }),
  };
  const { credsFile, nkeySeedFile } = options;
  return {
    servers: options.servers,
    name: options.name,
    ...(options.user === undefined ? {} : { user: options.user, pass: options.pass ?? '' }),
    ...(credsFile === undefined ? {} : { authenticator: credsAuthenticator(() => readFileSync(credsFile)) }),
    ...(nkeySeedFile === undefined ? {} : { authenticator: nkeyAuthenticator(() => new TextEncoder().encode(readFileSync(nkeySeedFile, 'utf8').trim())) }),
    ...(options.inboxPrefix === undefined ? {} : { inboxPrefix: options.inboxPrefix }),
    ...(Object.keys(tls).length === 0 ? {} : { tls }),
    timeout: options.connectTimeoutMs ?? 10_000,
    // A restarting NATS server must not take services down with it.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: options.waitForServer ?? true,
    // Without this the client builds an Error with a stack trace for every request, a
    // quarter of a busy scheduler's CPU (bench/scheduler-throughput.ts --profile).
    noAsyncTraces: true,
  };
}

export async function connectBus(options: BusOptions): Promise<NatsConnection> {
  return connect(natsConnectionOptions(options));
}

/**
 * Bus settings from the environment, as every service and the CLI read them:
 * CAIRN_NATS (servers, comma-separated); one way to log in: CAIRN_NATS_USER and
 * CAIRN_NATS_PASSWORD (each also as a _FILE), CAIRN_NATS_CREDS (a .creds file) or
 * CAIRN_NATS_NKEY_SEED_FILE; CAIRN_NATS_INBOX; TLS: CAIRN_NATS_CA, CAIRN_NATS_CERT and
 * CAIRN_NATS_KEY (PEM files). A file that cannot be read fails here, naming its setting.
 */
export function busFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): BusOptions {
  const user = settingFromEnv(env, 'CAIRN_NATS_USER');
  const logins = [user && 'CAIRN_NATS_USER', env.CAIRN_NATS_CREDS && 'CAIRN_NATS_CREDS', env.CAIRN_NATS_NKEY_SEED_FILE && 'CAIRN_NATS_NKEY_SEED_FILE'].filter(
    Boolean,
  );
  if (logins.length > 1) throw new Error(`${logins.join(' and ')} are both set: give one way to log in to NATS`);
  if ((env.CAIRN_NATS_CERT === undefined) !== (env.CAIRN_NATS_KEY === undefined))
    throw new Error('CAIRN_NATS_CERT and CAIRN_NATS_KEY go together: give both or neither');
  const files = (['CAIRN_NATS_CREDS', 'CAIRN_NATS_NKEY_SEED_FILE', 'CAIRN_NATS_CA', 'CAIRN_NATS_CERT', 'CAIRN_NATS_KEY'] as const).filter(
    (setting) => env[setting],
  );
  // Checked now, so that a wrong path is an error at start and not a silent reconnect loop.
  for (const setting of files) readSettingFile(env[setting]!, setting);
  return {
    servers: (env.CAIRN_NATS ?? 'nats://127.0.0.1:4222').split(','),
    name,
    ...(user ? { user, pass: settingFromEnv(env, 'CAIRN_NATS_PASSWORD') ?? '' } : {}),
    ...(env.CAIRN_NATS_CREDS ? { credsFile: env.CAIRN_NATS_CREDS } : {}),
    ...(env.CAIRN_NATS_NKEY_SEED_FILE ? { nkeySeedFile: env.CAIRN_NATS_NKEY_SEED_FILE } : {}),
    ...(env.CAIRN_NATS_INBOX ? { inboxPrefix: env.CAIRN_NATS_INBOX } : {}),
    ...(env.CAIRN_NATS_CA ? { tlsCaFile: env.CAIRN_NATS_CA } : {}),
    ...(env.CAIRN_NATS_CERT ? { tlsCertFile: env.CAIRN_NATS_CERT, tlsKeyFile: env.CAIRN_NATS_KEY! } : {}),
  };
}

const DAY_NS = 24 * 3600 * 1e9;

/**
 * How the services make streams and buckets. `replicas`: copies of each across a NATS
 * cluster's nodes (CAIRN_JETSTREAM_REPLICAS; 3 in infra/k8s and infra/compose). Unset, a
 * new stream gets one and an existing one keeps what it has, so that a process started
 * without the setting never scales a cluster's streams down.
 */
export interface JetStreamOptions {
  readonly replicas?: number;
}

/** CAIRN_JETSTREAM_REPLICAS, checked (1 to 5, as nats-server allows). */
export function jetStreamFromEnv(env: NodeJS.ProcessEnv = process.env): JetStreamOptions {
  const raw = env.CAIRN_JETSTREAM_REPLICAS;
  if (raw === undefined || raw === '') return {};
  const replicas = Number(raw);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5)
    throw new Error(`CAIRN_JETSTREAM_REPLICAS=${JSON.stringify(raw)}: expected a whole number from 1 to 5`);
  return { replicas };
}

export async function ensureJetStream(nc: NatsConnection, options: JetStreamOptions = {}): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const configs = [
    ...[streams.logs, streams.results].map((s) => ({
      name: s.name,
      subjects: [...s.subjects],
      max_age: s.maxAgeDays * DAY_NS,
      ...('duplicateWindowMinutes' in s ? { duplicate_window: s.duplicateWindowMinutes * 60 * 1e9 } : {}),
    })),
    ...Object.entries(blobStores).map(([store, b]) => ({
      name: b.stream,
      subjects: [subjects.blobsAll(store as BlobStoreName)],
      max_age: b.maxAgeDays * DAY_NS,
      // Write-once by the server's rules, not by the writers' courtesy (blob-store.ts).
      deny_delete: true,
      deny_purge: true,
      allow_rollup_hdrs: false,
    })),
  ];
  for (const config of configs) {
    const full = {
      ...config,
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      // Readers fetch by subject with direct gets (no consumer per reader).
      allow_direct: true,
      ...(options.replicas === undefined ? {} : { num_replicas: options.replicas }),
    };
    try {
      const { config: current } = await jsm.streams.info(config.name);
      await jsm.streams.update(config.name, { num_replicas: current.num_replicas, ...full });
    } catch {
      try {
        await jsm.streams.add(full);
      } catch (e) {
        // Another service created it between our two calls.
        if (!String(e).includes('already in use')) throw e;
      }
    }
  }
}

/** Opens a bucket, making it (with `options.replicas`) if it is not there; an existing one is left as it is. */
export async function openBucket(nc: NatsConnection, name: (typeof buckets)[keyof typeof buckets], options: JetStreamOptions = {}): Promise<KV> {
  return new Kvm(nc).create(name, { history: 1, storage: StorageType.File, ...(options.replicas === undefined ? {} : { replicas: options.replicas }) });
}

/** The JetStream streams `ensureAll` makes (a bucket is the stream KV_<bucket>). */
export function expectedStreamNames(): string[] {
  return [streams.logs.name, streams.results.name, ...Object.values(blobStores).map((b) => b.stream), ...Object.values(buckets).map((b) => `KV_${b}`)];
}

/** The streams and buckets of `expectedStreamNames` that the server does not have (one request). */
export async function missingStreams(nc: NatsConnection, timeoutMs = 2000): Promise<string[]> {
  const jsm = await jetstreamManager(nc, { timeout: timeoutMs, checkAPI: false });
  const present = new Set<string>();
  for await (const name of jsm.streams.names()) present.add(name);
  return expectedStreamNames().filter((name) => !present.has(name));
}

/** What the services create at start: streams (blob stores among them) and buckets. */
export async function ensureAll(nc: NatsConnection, options: JetStreamOptions = {}): Promise<void> {
  await ensureJetStream(nc, options);
  for (const bucket of Object.values(buckets)) await openBucket(nc, bucket, options);
}
