/**
 * What the service keeps per image, one JetStream KV entry each (image-records.ts): the
 * image published now, its history, the rebuild in flight and the failures of the
 * current inputs. An image's state is explicit, never inferred: `stateOf` names it.
 */

/** One publication of an image: the registry holds it under `digest` (and its tags while current). */
export interface Published {
  readonly digest: string;
  readonly inputs: string;
  readonly at: number;
  /** The cluster job that built it. */
  readonly job?: string;
  readonly buildMs?: number;
}

/** A rebuild that was started and has not ended: a restart resumes it (never starts a second one). */
export interface InFlight {
  readonly inputs: string;
  /** 1, 2, 3...: the attempt for these inputs; part of the job's idempotency key. */
  readonly attempt: number;
  readonly startedAt: number;
  /** Known once the scheduler answered the submission. */
  readonly job?: string;
  /** Asked with --force (built even though the inputs did not change). */
  readonly forced?: boolean;
  /** The replica carrying it out, and when it last said so: a claim not renewed in time is taken over. */
  readonly holder?: string;
  readonly renewedAt?: number;
}

/** The failures of the newest inputs: new inputs start afresh. */
export interface Failures {
  readonly inputs: string;
  readonly count: number;
  readonly last: string;
  readonly at: number;
  /** No new attempt before this; undefined once the retries are used up. */
  readonly retryAt?: number;
  readonly job?: string;
}

/**
 * A webhook delivery not made yet (image-webhooks.ts): written in the same
 * compare-and-set as the publish or failure it tells of, removed once delivered or given
 * up on, so a restart (even kill -9) resumes it instead of losing it.
 */
export interface PendingDelivery {
  /** `x-cairn-delivery`: the same for every URL and every attempt of one event. */
  readonly id: string;
  readonly url: string;
  readonly event: 'image.published' | 'image.failed';
  /** The exact JSON sent (and signed). */
  readonly body: string;
  /** Attempts begun so far, across restarts. */
  readonly attempts: number;
  /** The replica making the attempts, and when it last began one: a delivery not tried for long is taken over. */
  readonly holder?: string;
  readonly triedAt?: number;
}

export interface ImageRecord {
  readonly name: string;
  readonly current?: Published;
  /** Newest first; the current one included; pruned by age (retention). */
  readonly history: readonly Published[];
  readonly building?: InFlight;
  readonly failures?: Failures;
  /** A rebuild asked with --force and not started yet. */
  readonly forceRequested?: boolean;
  /** The packages the last probe resolved (see probePackages), and when. */
  readonly probe?: { readonly packages: string; readonly at: number };
  /** Webhook deliveries not made yet, oldest first. */
  readonly webhooks?: readonly PendingDelivery[];
}

export const emptyRecord = (name: string): ImageRecord => ({ name, history: [] });

export type ImageState = 'published' | 'building' | 'retrying' | 'failed' | 'waiting' | 'absent';
export const IMAGE_STATES: readonly ImageState[] = ['published', 'building', 'retrying', 'failed', 'waiting', 'absent'];
