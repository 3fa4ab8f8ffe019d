import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { answer, call, ok, streams, subjects, type Accepted, type Assignment, type LogChunk, type Reply } from '@cairn/contracts';
import { busyboxImage } from '../../../test/support/images.js';
import { withBtrfs, type TestFilesystem } from '../../../test/support/filesystems.js';

export const BASE = 'cairn/busybox:latest';
export const spec = (ops: string) => `((from ${BASE}) (shell /bin/sh -c) ${ops})`;

/** A btrfs store, a busybox OCI layout and the environment a worker-agent reads. */
export interface WorkerHost {
  readonly dir: string;
  readonly fs: TestFilesystem;
  env(natsUrl: string, worker: string, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  cleanup(): Promise<void>;
}

export async function makeWorkerHost(sizeMb?: number): Promise<WorkerHost> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-worker-test-'));
  const fs = await withBtrfs(sizeMb === undefined ? {} : { sizeMb });
  await busyboxImage(join(dir, 'images'), BASE);
  await writeFile(join(dir, 'cairn.json'), JSON.stringify({ stateDir: join(dir, 'state') }));
  return {
    dir,
    fs,
    env: (natsUrl, worker, extra = {}) => ({
      PATH: process.env.PATH,
      CAIRN_NATS: natsUrl,
      CAIRN_WORKER_ID: worker,
      CAIRN_POOL: 'linux-x86_64',
      CAIRN_PLATFORM: 'linux-x86_64',
      CAIRN_CAPACITY: '2',
      CAIRN_STORE: `btrfs:${fs.path}`,
      CAIRN_FETCHER: `oci:${join(dir, 'images')}`,
      CAIRN_CONFIG: join(dir, 'cairn.json'),
      CAIRN_SECRET_KEY: 'test-key',
      CAIRN_HEARTBEAT_MS: '200',
      CAIRN_CALL_TIMEOUT_MS: '500',
      CAIRN_LOG_FORMAT: 'text',
      CAIRN_HTTP_PORT: '0',
      ...extra,
    }),
    cleanup: async () => {
      await fs.cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

type Verb = 'register' | 'heartbeat' | 'started' | 'complete';
type Handler = (data: Record<string, unknown>, attempt: number) => Reply<unknown> | undefined;

/**
 * The test's scheduler stand-in (the real scheduler is written separately): raw NATS
 * subscriptions on `cairn.v1.sched.<worker>.*` that record what the worker sends and
 * answer with `answer()`, and `assign`/`cancel` sent with `call()`, as the scheduler
 * would. A handler returning undefined leaves a request unanswered.
 */
export class SchedulerStandIn {
  readonly received: Record<Verb, Record<string, unknown>[]> = { register: [], heartbeat: [], started: [], complete: [] };
  readonly handlers: Record<Verb, Handler> = {
    register: () => ok({ heartbeatMs: 200, leaseTtlMs: 5000 }),
    heartbeat: () => ok({ known: true, cancel: [] }),
    started: () => ok({ recorded: true }),
    complete: () => ok({ recorded: true }),
  };
  private sub: Subscription | undefined;

  constructor(
    private readonly nc: NatsConnection,
    readonly worker: string,
  ) {}

  start(): this {
    this.sub = this.nc.subscribe(`cairn.v1.sched.${this.worker}.*`, {
      callback: (_err, msg: Msg) => {
        const verb = msg.subject.split('.').at(-1) as Verb;
        void answer(msg, (data) => {
          const list = this.received[verb];
          list.push(data as Record<string, unknown>);
          const reply = this.handlers[verb](data as Record<string, unknown>, list.length);
          if (reply === undefined) throw new Unanswered();
          return reply;
        }).catch((e: unknown) => {
          if (!(e instanceof Unanswered)) throw e;
        });
      },
    });
    return this;
  }

  stop(): void {
    this.sub?.unsubscribe();
  }

  get publicKey(): string {
    const last = this.received.register.at(-1);
    if (!last) throw new Error(`worker ${this.worker} has not registered`);
    return last.publicKey as string;
  }

  assign(a: Assignment): Promise<Reply<Accepted>> {
    return call<Accepted>(this.nc, subjects.toWorker(this.worker, 'assign'), a, { timeoutMs: 5000 });
  }

  cancel(job: string, lease: string, reason: string): Promise<Reply<unknown>> {
    return call(this.nc, subjects.toWorker(this.worker, 'cancel'), { job, lease, reason }, { timeoutMs: 5000 });
  }

  async waitFor(verb: Verb, predicate: (m: Record<string, unknown>) => boolean = () => true, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received[verb].find(predicate);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`no ${verb} from ${this.worker} within ${timeoutMs} ms; got ${JSON.stringify(this.received[verb]).slice(0, 2000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** The outcome of `job`, once the worker's complete arrived (and was answered). */
  async outcome(job: string, timeoutMs = 90_000): Promise<Record<string, unknown> & { outcome: Outcome }> {
    return (await this.waitFor('complete', (m) => m.job === job, timeoutMs)) as Record<string, unknown> & { outcome: Outcome };
  }
}

class Unanswered extends Error {}

interface Outcome {
  state: string;
  failure?: string;
  steps: { stage: string; op: string; id: string; cached: boolean; ms: number }[];
  snapshotId?: string;
  artifacts: { path: string; size: number; sha256: string }[];
  platform: string;
  startedAt: number;
  finishedAt: number;
}

let jobCounter = 0;
export function assignment(overrides: Partial<Assignment> & Pick<Assignment, 'spec'>): Assignment {
  const job = `j-${Date.now().toString(36)}${(jobCounter++).toString(36).padStart(4, '0')}`;
  return {
    job,
    lease: `lease-${job}`,
    client: 'alice',
    name: 'test',
    secrets: [],
    outputs: [],
    timeoutSeconds: 600,
    cacheHint: 'hint-default',
    attempt: 1,
    ...overrides,
  };
}

/**
 * A job's log chunks from the CAIRN_LOGS stream, read from the start until the end
 * chunk (or until `enough` says so, for a job still running).
 */
export async function readLog(
  nc: NatsConnection,
  client: string,
  job: string,
  timeoutMs = 60_000,
  enough?: (chunks: LogChunk[]) => boolean,
): Promise<LogChunk[]> {
  const js = jetstream(nc);
  const consumer = await js.consumers.get(streams.logs.name, { filter_subjects: subjects.jobLog(client, job) });
  const chunks: LogChunk[] = [];
  const messages = await consumer.consume();
  const timer = setTimeout(() => void messages.close(), timeoutMs);
  try {
    for await (const m of messages) {
      const chunk = m.json<LogChunk>();
      chunks.push(chunk);
      if (chunk.end !== undefined || enough?.(chunks)) return chunks;
    }
  } finally {
    clearTimeout(timer);
    await messages.close();
  }
  throw new Error(`log of ${job} has no end chunk within ${timeoutMs} ms: ${JSON.stringify(chunks).slice(0, 2000)}`);
}

export const logText = (chunks: readonly LogChunk[]) => chunks.map((c) => c.text).join('');

/** Every message in every JetStream stream (logs, results, object stores...), as text. */
export async function everyStoredMessage(nc: NatsConnection): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const out: string[] = [];
  for await (const info of jsm.streams.list()) {
    const { first_seq: first, last_seq: last } = info.state;
    for (let seq = first; seq <= last && last > 0; seq++) {
      try {
        const m = await jsm.streams.getMessage(info.config.name, { seq });
        if (m) out.push(`${m.subject} ${new TextDecoder().decode(m.data)}`);
      } catch {
        // deleted (a purged or replaced object)
      }
    }
  }
  return out;
}

export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
