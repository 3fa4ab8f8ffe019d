/**
 * Which scheduler process leads. A cluster may run several (a standby on another
 * machine); exactly one holds the `scheduler` key of the `cairn-leader` bucket and
 * serves, the others wait here until it is gone. The key lives TTL_MS after its last
 * write (the bucket's max age), and the leader rewrites it every RENEW_MS with the
 * revision it last wrote, so a second writer shows as a revision conflict.
 *
 * Fencing is by time: a leader that has not renewed for STEP_DOWN_MS (under half the
 * TTL) stops at once, by its own clock, before the key can expire and a standby can take
 * over — so two schedulers never act at the same time, even across a network partition
 * (a partitioned leader's buffered writes must not reach NATS after a standby started).
 * A leader that stops cleanly deletes the key, and a standby takes over within a second.
 */
import { Kvm, type KV } from '@nats-io/kv';
import { StorageType } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { throughBusRestarts } from '@cairn/contracts';

export const LEADER_BUCKET = 'cairn-leader';
/** Nest token of the process's Leadership (null where a test runs the module alone). */
export const LEADERSHIP = Symbol('LEADERSHIP');
/** The key whose value names the leader: `<CAIRN_SCHEDULER_ID or host>/<pid>/<random>`. */
export const LEADER_KEY = 'scheduler';
export const TTL_MS = 10_000;
const RENEW_MS = 1_000;
const STEP_DOWN_MS = 4_000;
const POLL_MS = 500;

export interface LeadershipLog {
  log(message: string): void;
  warn(message: string): void;
}

export class Leadership {
  /** Resolves, with the reason, when this process must stop serving. */
  readonly lost: Promise<string>;
  private lose!: (reason: string) => void;
  private timer?: NodeJS.Timeout;
  private lastRenewed = Date.now();
  private released = false;
  private renewing = false;

  private constructor(
    private readonly kv: KV,
    readonly holder: string,
    private revision: number,
    private readonly logger: LeadershipLog,
  ) {
    this.lost = new Promise((resolve) => (this.lose = resolve));
    this.timer = setInterval(() => void this.renew(), RENEW_MS);
  }

  /**
   * Waits until this process holds the leadership (a standby waits here). `replicas`:
   * the bucket's copies when this makes it (CAIRN_JETSTREAM_REPLICAS), so that the
   * leadership survives a NATS node as the other buckets do.
   */
  static async acquire(nc: NatsConnection, holder: string, logger: LeadershipLog, signal?: AbortSignal, replicas?: number): Promise<Leadership> {
    const kv = await throughBusRestarts(
      `opening the ${LEADER_BUCKET} bucket`,
      () => new Kvm(nc).create(LEADER_BUCKET, { history: 1, ttl: TTL_MS, storage: StorageType.File, ...(replicas === undefined ? {} : { replicas }) }),
      (m) => logger.warn(m),
      signal,
    );
    let waitingFor: string | undefined;
    for (;;) {
      if (signal?.aborted) throw new Error('stopped while waiting for the leadership');
      try {
        const revision = await kv.create(LEADER_KEY, holder);
        logger.log(`leading this cluster's scheduling as ${holder}`);
        return new Leadership(kv, holder, revision, logger);
      } catch (e) {
        const current = await kv.get(LEADER_KEY).catch(() => null);
        const other = current?.operation === 'PUT' ? current.string() : undefined;
        // Our own create, whose reply a NATS restart lost: the key is ours already.
        if (other === holder && current) {
          logger.log(`leading this cluster's scheduling as ${holder}`);
          return new Leadership(kv, holder, current.revision, logger);
        }
        if (other === undefined && !/wrong last sequence|key exists/i.test(String(e))) logger.warn(`taking the leadership failed, trying again: ${String(e)}`);
        if (other !== undefined && other !== waitingFor) {
          logger.log(`standing by: ${other} leads; taking over when it stops or is silent for ${TTL_MS / 1000} s`);
          waitingFor = other;
        }
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  private async renew(): Promise<void> {
    if (this.released) return;
    if (Date.now() - this.lastRenewed > STEP_DOWN_MS) return this.stepDown(`could not renew the leadership for ${STEP_DOWN_MS / 1000} s (NATS unreachable?)`);
    // One write at a time: a second one with the same revision would look like a rival.
    if (this.renewing) return;
    this.renewing = true;
    try {
      // A short deadline: a write lost in a NATS restart is retried within the step-down time.
      const revision = await this.kv.update(LEADER_KEY, this.holder, this.revision, RENEW_MS);
      if (!this.released) {
        this.revision = revision;
        this.lastRenewed = Date.now();
      }
    } catch (e) {
      if (/wrong last sequence/i.test(String(e))) {
        // Our own earlier write whose reply was lost, or a rival's: the value says which.
        const current = await this.kv.get(LEADER_KEY).catch(() => null);
        if (current?.operation === 'PUT' && current.string() === this.holder) {
          this.revision = current.revision;
          return;
        }
        return this.stepDown(`another scheduler holds the leadership now (${current?.string() ?? 'nobody'})`);
      }
      this.logger.warn(`renewing the leadership failed, trying again: ${String(e)}`);
    } finally {
      this.renewing = false;
    }
  }

  private stepDown(reason: string): void {
    clearInterval(this.timer);
    this.released = true;
    this.lose(reason);
  }

  /** Gives the leadership up (a clean stop): a standby takes over within a second. */
  async release(): Promise<void> {
    if (this.released) return;
    clearInterval(this.timer);
    this.released = true;
    await this.kv.delete(LEADER_KEY, { previousSeq: this.revision }).catch(() => undefined);
  }
}
