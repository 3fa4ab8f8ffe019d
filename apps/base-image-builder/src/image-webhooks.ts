/**
 * Tells other systems what happened to an image: a JSON event POSTed to each webhook URL
 * (CAIRN_IMAGE_WEBHOOKS) when an image gets a new digest (`image.published`, one per tag)
 * and when a build of it fails (`image.failed`, one per failed build), signed
 * `x-cairn-signature: sha256=<hex>` with an HMAC-SHA256 of the exact body bytes under the
 * secret of CAIRN_IMAGE_WEBHOOK_SECRET_FILE, so a receiver holding the secret can tell the
 * event came from here.
 *
 * Delivery is durable and never in the way of a publish: the rebuilder writes each
 * delivery (event x URL) into the image's record in the same compare-and-set as the
 * publish or failure it tells of (`webhooks`, core/image-record.ts); this class then
 * sends it in the background and removes it once delivered, or after its retries
 * (backoff and jitter) are used up, with a log line. Each attempt is counted in the record
 * first, so a restart, even kill -9, resumes a delivery where it was: the same replica at
 * once, another once the delivery has not been tried for a while. Every attempt of one
 * event carries the same `x-cairn-delivery` id, so a receiver can drop a repeat (an
 * attempt cut by a crash after the receiver took it is made again).
 */
import { createHmac, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { backoffDelay, type Backoff } from '@cairn/contracts';
import type { Failures, PendingDelivery } from './core/image-record.js';
import type { ImageRecords } from './image-records.js';

/** An image got a new digest: one event per tag. */
export interface PublishedEvent {
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

/** A build of the image failed: its tags still name `published` (the last good image), if any. */
export interface FailedEvent {
  readonly event: 'image.failed';
  readonly image: string;
  readonly repository: string;
  readonly tags: readonly string[];
  readonly reason: string;
  /** How many builds of these inputs failed, this one included. */
  readonly failures: number;
  /** When it is built again; absent once the retries are used up (it waits for new inputs or a forced rebuild). */
  readonly retryAt?: number;
  /** The cluster job that failed, when it got as far as one. */
  readonly job?: string;
  /** The digest still published under its tags; absent when it never was. */
  readonly published?: string;
  readonly inputs: string;
  readonly at: number;
}

export type ImageEvent = PublishedEvent | FailedEvent;

interface ImageNames {
  readonly name: string;
  readonly repository: string;
  readonly tags: readonly string[];
}

export function publishedEvents(image: ImageNames, digest: string, previous: string | undefined, job: string | undefined, at: number): PublishedEvent[] {
  return image.tags.map((tag) => ({
    event: 'image.published',
    image: image.name,
    repository: image.repository,
    tag,
    digest,
    ...(previous ? { previous } : {}),
    ...(job ? { job } : {}),
    at,
  }));
}

export function failedEvent(image: ImageNames, failures: Failures, published: string | undefined): FailedEvent {
  return {
    event: 'image.failed',
    image: image.name,
    repository: image.repository,
    tags: [...image.tags],
    reason: failures.last,
    failures: failures.count,
    ...(failures.retryAt === undefined ? {} : { retryAt: failures.retryAt }),
    ...(failures.job ? { job: failures.job } : {}),
    ...(published ? { published } : {}),
    inputs: failures.inputs,
    at: failures.at,
  };
}

/** What a log line says of an event. */
function what(event: ImageEvent): string {
  return event.event === 'image.published' ? `${event.image} ${event.tag} -> ${event.digest}` : `${event.image} failed (${event.failures})`;
}

export interface WebhookOptions {
  /** Attempts after the first. */
  readonly retries: number;
  readonly backoff: Backoff;
  /** One attempt's bound: a receiver that never answers must not hold a delivery forever. */
  readonly timeoutMs: number;
  /** This replica (CAIRN_REPLICA_ID): a restart under the same name resumes its deliveries at once. */
  readonly replica: string;
  /** Another replica's delivery not tried for this long is taken over (its replica is gone). */
  readonly staleMs: number;
  readonly log: (message: string) => void;
}

const DEFAULTS = { retries: 5, backoff: { firstMs: 1000, maxMs: 60_000 }, timeoutMs: 10_000 };

export const signatureOf = (secret: string, body: string): string => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/** A URL as logs may show it: no user, password or query (where receivers put their tokens). */
const shown = (url: URL): string => `${url.origin}${url.pathname}`;

const sameDelivery = (a: PendingDelivery, b: PendingDelivery) => a.id === b.id && a.url === b.url;

export class ImageWebhooks {
  private readonly stopping = new AbortController();
  /** The deliveries this process is making, by image, id and URL: each is made by one loop. */
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(
    private readonly urls: readonly URL[],
    private readonly secret: string,
    private readonly options: WebhookOptions,
  ) {}

  /** The webhooks the environment names, or undefined when it names none. */
  static async fromEnv(env: NodeJS.ProcessEnv, replica: string, log: (message: string) => void): Promise<ImageWebhooks | undefined> {
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
    // Taken over only well after the holder's longest wait plus its longest attempt.
    const staleMs = 2 * (DEFAULTS.backoff.maxMs + DEFAULTS.timeoutMs);
    return new ImageWebhooks(urls, secret, { ...DEFAULTS, replica, staleMs, log });
  }

  /**
   * The deliveries of `events` to every URL, for the caller to store in the image's
   * record with the change they tell of; then `deliver` sends them.
   */
  outbox(events: readonly ImageEvent[]): PendingDelivery[] {
    return events.flatMap((event) => {
      const body = JSON.stringify(event);
      const id = randomUUID();
      return this.urls.map((url) => ({ id, url: url.href, event: event.event, body, attempts: 0 }));
    });
  }

  /**
   * Sends the image's stored deliveries in the background (those this process is not
   * sending already, and not another live replica's); returns at once.
   */
  deliver(records: ImageRecords, image: string, pending: readonly PendingDelivery[]): void {
    if (this.stopping.signal.aborted) return;
    for (const delivery of pending) {
      const key = `${image} ${delivery.id} ${delivery.url}`;
      if (this.inFlight.has(key)) continue;
      const run = this.run(records, image, delivery)
        .catch((e: unknown) => this.options.log(`webhook ${image}: delivery ${delivery.id}: ${e instanceof Error ? e.message : String(e)}`))
        .finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, run);
    }
  }

  /** Ends the attempts and waits; deliveries not made stay in the records for the next start. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all(this.inFlight.values());
  }

  private async run(records: ImageRecords, image: string, stored: PendingDelivery): Promise<void> {
    const { retries, backoff, log } = this.options;
    const url = this.urls.find((u) => u.href === stored.url);
    const label = `${url ? shown(url) : shown(new URL(stored.url))}: ${what(JSON.parse(stored.body) as ImageEvent)}`;
    const remove = () => this.written(label, () => this.remove(records, image, stored), false);
    if (!url) {
      // The operator took the URL out of CAIRN_IMAGE_WEBHOOKS since the event was stored.
      if (await remove()) log(`webhook ${label}: dropped, its URL is no longer in CAIRN_IMAGE_WEBHOOKS`);
      return;
    }
    while (!this.stopping.signal.aborted) {
      const attempt = await this.written(label, () => this.begin(records, image, stored), undefined);
      if (attempt === undefined) return; // delivered or given up meanwhile, another replica's, or the service stopping
      if (attempt.attempts > retries + 1) {
        // Its last attempt was begun by a process that died before it could give up.
        await remove();
        log(`webhook ${label}: not delivered after ${retries + 1} attempts (the last one's answer was lost in a restart)`);
        return;
      }
      const why = await this.post(url, attempt);
      if (why === undefined) {
        await remove();
        return;
      }
      if (this.stopping.signal.aborted) {
        log(`webhook ${label}: attempt ${attempt.attempts} failed (${why}); the service is stopping: left for its next start`);
        return;
      }
      if (attempt.attempts > retries) {
        await remove();
        log(`webhook ${label}: not delivered (${why}) after ${attempt.attempts} attempts`);
        return;
      }
      log(`webhook ${label}: attempt ${attempt.attempts} failed (${why}); trying again`);
      await sleep(backoffDelay(attempt.attempts - 1, backoff), this.stopping.signal);
    }
  }

  /**
   * Writes the delivery's record, trying again after a wait (the attempts' backoff) when
   * the write fails, NATS being away or a bucket's leader being elected, for as long as
   * the service runs: giving up would leave the delivery stored with nobody sending it
   * until the service's next pass. `stopping`: what the write comes to when the service
   * stops meanwhile (the record stays as it was, for the next start).
   */
  private async written<T>(label: string, write: () => Promise<T>, stopping: T): Promise<T> {
    for (let failures = 0; ; failures++) {
      try {
        return await write();
      } catch (e) {
        if (this.stopping.signal.aborted) return stopping;
        // Once per outage: a line per try would flood the log while NATS is away.
        if (failures === 0)
          this.options.log(`webhook ${label}: cannot write its record (${e instanceof Error ? e.message : String(e)}); trying again until it can`);
        await sleep(backoffDelay(failures, this.options.backoff), this.stopping.signal);
        if (this.stopping.signal.aborted) return stopping;
      }
    }
  }

  /** Counts an attempt in the record before making it; undefined when the delivery is not this replica's to make. */
  private async begin(records: ImageRecords, image: string, stored: PendingDelivery): Promise<PendingDelivery | undefined> {
    let begun: PendingDelivery | undefined;
    await records.update(image, (record) => {
      begun = undefined;
      const found = record.webhooks?.find((d) => sameDelivery(d, stored));
      if (!found) return undefined;
      const now = Date.now();
      const others = found.holder !== undefined && found.holder !== this.options.replica && now - (found.triedAt ?? 0) < this.options.staleMs;
      if (others) return undefined;
      begun = { ...found, attempts: found.attempts + 1, holder: this.options.replica, triedAt: now };
      return { ...record, webhooks: record.webhooks!.map((d) => (sameDelivery(d, stored) ? begun! : d)) };
    });
    return begun;
  }

  private async remove(records: ImageRecords, image: string, stored: PendingDelivery): Promise<boolean> {
    const written = await records.update(image, (record) => {
      if (!record.webhooks?.some((d) => sameDelivery(d, stored))) return undefined;
      const webhooks = record.webhooks.filter((d) => !sameDelivery(d, stored));
      const { webhooks: _all, ...rest } = record;
      return webhooks.length ? { ...rest, webhooks } : rest;
    });
    return written !== undefined;
  }

  /** One attempt: undefined when the receiver took it (2xx), else why not. */
  private async post(url: URL, delivery: PendingDelivery): Promise<string | undefined> {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-cairn-event': delivery.event,
          'x-cairn-delivery': delivery.id,
          'x-cairn-signature': signatureOf(this.secret, delivery.body),
        },
        body: delivery.body,
        signal: AbortSignal.any([AbortSignal.timeout(this.options.timeoutMs), this.stopping.signal]),
      });
      await res.body?.cancel();
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (e) {
      // An error may quote the whole URL, and its query may hold the receiver's token.
      return (e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)).split(url.href).join(shown(url));
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
