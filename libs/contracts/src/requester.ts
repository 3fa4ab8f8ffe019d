/**
 * Requests over one wildcard inbox subscription per connection, with one timer for all
 * their deadlines. nats.js's own `request` does the same multiplexing, but also arms a
 * timer and builds an Error object (a stack trace) for every request, even one that is
 * answered — a tenth of a busy scheduler's CPU, which makes four requests per job (an
 * assignment, three job-record writes) and a JetStream publish. `call` and the
 * scheduler's durable writes go through here; replies are matched by a counter token.
 */
import { createInbox, headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { TRACE_HEADER } from './trace.js';

export class RequestTimeout extends Error {
  override readonly name = 'RequestTimeout';
}

export class NoResponders extends Error {
  override readonly name = 'NoResponders';
}

interface Pending {
  readonly resolve: (msg: Msg) => void;
  readonly reject: (e: Error) => void;
  readonly deadline: number;
  readonly subject: string;
}

const SWEEP_MS = 50;

export class Requester {
  private readonly prefix: string;
  private readonly pending = new Map<number, Pending>();
  private next = 0;
  private sub?: Subscription;
  private sweeper?: NodeJS.Timeout;

  constructor(private readonly nc: NatsConnection) {
    // Under the connection's own inbox prefix: NATS permissions allow a user only its own.
    this.prefix = createInbox((nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  }

  request(subject: string, data: string | Uint8Array, options: { timeoutMs: number; headers?: Record<string, string> }): Promise<Msg> {
    this.open();
    const token = ++this.next;
    return new Promise<Msg>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, deadline: Date.now() + options.timeoutMs, subject });
      try {
        this.nc.publish(subject, data, { reply: `${this.prefix}.${token}`, ...(options.headers ? { headers: toHeaders(options.headers) } : {}) });
      } catch (e) {
        this.pending.delete(token);
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  }

  private open(): void {
    if (this.sub && !this.sub.isClosed()) return;
    this.sub = this.nc.subscribe(`${this.prefix}.*`, {
      callback: (err, msg) => {
        if (err) return this.failAll(err);
        const token = Number(msg.subject.slice(this.prefix.length + 1));
        const p = this.pending.get(token);
        if (!p) return; // answered after its deadline
        this.pending.delete(token);
        if (msg.data.length === 0 && msg.headers?.code === 503) p.reject(new NoResponders(`no responders for ${p.subject}`));
        else p.resolve(msg);
      },
    });
    void this.sub.closed.then(() => this.failAll(new Error('connection closed')));
    this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  private sweep(): void {
    if (this.pending.size === 0) return;
    const now = Date.now();
    for (const [token, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(token);
        p.reject(new RequestTimeout(`no reply from ${p.subject} in time`));
      }
    }
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

function toHeaders(values: Record<string, string>): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(values)) h.set(k, v);
  return h;
}

const requesters = new WeakMap<NatsConnection, Requester>();

/** The connection's shared Requester. */
export function requesterOf(nc: NatsConnection): Requester {
  let r = requesters.get(nc);
  if (!r) requesters.set(nc, (r = new Requester(nc)));
  return r;
}

/**
 * A JetStream publish answered by its acknowledgement (a KV put is one on `$KV.<bucket>.<key>`);
 * throws with the server's reason when the stream refused it.
 */
export async function durablePublish(
  nc: NatsConnection,
  subject: string,
  data: string | Uint8Array,
  options: { timeoutMs?: number; msgId?: string; trace?: string } = {},
): Promise<{ stream: string; seq: number; duplicate?: boolean }> {
  const headers = {
    ...(options.msgId === undefined ? {} : { 'Nats-Msg-Id': options.msgId }),
    ...(options.trace === undefined ? {} : { [TRACE_HEADER]: options.trace }),
  };
  const msg = await requesterOf(nc).request(subject, data, { timeoutMs: options.timeoutMs ?? 5000, ...(Object.keys(headers).length ? { headers } : {}) });
  const ack = msg.json<{ stream?: string; seq?: number; duplicate?: boolean; error?: { code: number; description: string } }>();
  if (ack.error) throw new Error(`${subject}: JetStream refused the write: ${ack.error.description} (${ack.error.code})`);
  if (ack.stream === undefined || ack.seq === undefined) throw new Error(`${subject}: not a JetStream acknowledgement`);
  return { stream: ack.stream, seq: ack.seq, ...(ack.duplicate ? { duplicate: true } : {}) };
}
