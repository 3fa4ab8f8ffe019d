/**
 * Tells other systems that an image has a new digest: a JSON event per tag POSTed to each
 * webhook URL (CAIRN_IMAGE_WEBHOOKS), signed `x-cairn-signature: sha256=<hex>` with an
 * HMAC-SHA256 of the exact body bytes under the secret of CAIRN_IMAGE_WEBHOOK_SECRET_FILE,
 * so a receiver holding the secret can tell the event came from here.
 *
 * Delivery runs beside the publish, never in its way: the digest is tagged and recorded
 * first, then events are sent in the background. A receiver that fails (no answer, not 2xx)
 * is tried again with backoff and jitter, then given up on with a log line. Retries of one
 * event carry the same `x-cairn-delivery` id, so a receiver can drop a repeat. Events are
 * kept in memory only: a restart drops those not yet delivered.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { attempts, type Backoff } from '@cairn/contracts';

export interface DigestEvent {
  readonly event: 'image.published';
  /** The image's name in the matrix, e.g. `debian:bookworm`. */
  readonly image: string;
  readonly repository: string;
  readonly tag: string;
  readonly digest: string;
  /** The digest the tag named before; absent for an image's first publication. */
  readonly previous?: string;
  /** The cluster job that built it. */
  readonly job?: string;
  readonly at: number;
}

export interface WebhookOptions {
  readonly retries: number;
  readonly backoff: Backoff;
  /** One attempt's bound: a receiver that never answers must not hold a delivery forever. */
  readonly timeoutMs: number;
  readonly log: (message: string) => void;
}

const DEFAULTS = { retries: 5, backoff: { firstMs: 1000, maxMs: 60_000 }, timeoutMs: 10_000 };

export const signatureOf = (secret: string, body: string): string => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/** A URL as logs may show it: no user, password or query (where receivers put their tokens). */
const shown = (url: URL): string => `${url.origin}${url.pathname}`;

export class DigestWebhooks {
  private readonly stopping = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly urls: readonly URL[],
    private readonly secret: string,
    private readonly options: WebhookOptions,
  ) {}

  /** The webhooks the environment names, or undefined when it names none. */
  static async fromEnv(env: NodeJS.ProcessEnv, log: (message: string) => void): Promise<DigestWebhooks | undefined> {
    const list = (env.CAIRN_IMAGE_WEBHOOKS ?? '')
      .split(',')
      .map((u) => u.trim())
      .filter(Boolean);
    if (list.length === 0) return undefined;
    const urls = list.map((text, i) => {
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        throw new Error(`CAIRN_IMAGE_WEBHOOKS: entry ${i + 1} is not a URL (expected http://... or https://..., comma-separated)`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:')
        throw new Error(`CAIRN_IMAGE_WEBHOOKS: entry ${i + 1} (${shown(url)}) is not an http or https URL`);
      // fetch refuses them; a receiver checks the signature instead (or a token in the query).
      if (url.username || url.password) throw new Error(`CAIRN_IMAGE_WEBHOOKS: entry ${i + 1} (${shown(url)}) has a user or password, which cannot be sent`);
      return url;
    });
    const file = env.CAIRN_IMAGE_WEBHOOK_SECRET_FILE;
    if (!file) throw new Error('CAIRN_IMAGE_WEBHOOKS is set but CAIRN_IMAGE_WEBHOOK_SECRET_FILE is not: receivers could not verify the events');
    const secret = (
      await readFile(file, 'utf8').catch((e: unknown) =>
        Promise.reject(new Error(`CAIRN_IMAGE_WEBHOOK_SECRET_FILE ${file}: ${e instanceof Error ? e.message : String(e)}`)),
      )
    ).trim();
    if (secret.length < 16) throw new Error(`CAIRN_IMAGE_WEBHOOK_SECRET_FILE ${file}: the secret is shorter than 16 characters`);
    return new DigestWebhooks(urls, secret, { ...DEFAULTS, log });
  }

  /** Sends the events to every URL in the background; returns at once. */
  send(events: readonly DigestEvent[]): void {
    for (const event of events) {
      const body = JSON.stringify(event);
      const id = randomUUID();
      for (const url of this.urls) {
        const delivery = this.deliver(url, body, id, `${event.image} ${event.tag} -> ${event.digest}`).finally(() => this.inFlight.delete(delivery));
        this.inFlight.add(delivery);
      }
    }
  }

  /** Ends the retries' waits; deliveries not made by then are dropped. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all(this.inFlight);
  }

  private async deliver(url: URL, body: string, id: string, what: string): Promise<void> {
    const { retries, backoff, timeoutMs, log } = this.options;
    let why = '';
    for await (const attempt of attempts({ retries, ...backoff, signal: this.stopping.signal })) {
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-cairn-event': 'image.published',
            'x-cairn-delivery': id,
            'x-cairn-signature': signatureOf(this.secret, body),
          },
          body,
          signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), this.stopping.signal]),
        });
        await res.body?.cancel();
        if (res.ok) return;
        why = `HTTP ${res.status}`;
      } catch (e) {
        // An error may quote the whole URL, and its query may hold the receiver's token.
        why = (e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)).split(url.href).join(shown(url));
      }
      if (attempt < retries && !this.stopping.signal.aborted) log(`webhook ${shown(url)}: ${what}: attempt ${attempt + 1} failed (${why}); trying again`);
    }
    log(`webhook ${shown(url)}: ${what}: not delivered (${why})${this.stopping.signal.aborted ? '; the service is stopping' : ''}`);
  }
}
