/**
 * One pool's queue: a FIFO per client and urgency, served by stride scheduling so that
 * each client gets jobs started in proportion to its rate. A client's virtual time
 * advances by 1/rate each time one of its jobs is taken; the client with the smallest
 * virtual time goes next. A client that was idle re-enters at the current virtual time,
 * so it can neither hoard credit while idle nor be starved by a client with a long queue:
 * a client with 1,000 queued jobs and a client with 1 alternate.
 *
 * Urgent jobs go before every normal job of the pool; among urgent jobs the same fair
 * order applies.
 */

/**
 * A client's jobs of one urgency, in order. Jobs are taken from the front (among the
 * first few), so the front is an index into the array: taking one moves no other, where
 * `splice(0, 1)` would move every job behind it, once per assignment.
 */
class JobList {
  private items: string[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  at(i: number): string | undefined {
    return this.items[this.head + i];
  }

  push(job: string): void {
    this.items.push(job);
  }

  unshift(job: string): void {
    if (this.head > 0) this.items[--this.head] = job;
    else this.items.unshift(job);
  }

  remove(job: string): boolean {
    const i = this.items.indexOf(job, this.head);
    if (i < 0) return false;
    if (i === this.head) {
      this.head++;
      // Drop the taken front once it is most of the array.
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
    } else this.items.splice(i, 1);
    return true;
  }
}

interface ClientQueue {
  readonly urgent: JobList;
  readonly normal: JobList;
  /** Virtual time of the client's next job. */
  pass: number;
}

export interface QueuedRef {
  readonly job: string;
  readonly client: string;
  readonly urgent: boolean;
}

export class FairQueue {
  private readonly clients = new Map<string, ClientQueue>();
  /** The pass of the last job taken: where idle clients re-enter. */
  private now = 0;
  private size = 0;

  constructor(private readonly rateOf: (client: string) => number) {}

  get length(): number {
    return this.size;
  }

  push(ref: QueuedRef, front = false): void {
    let q = this.clients.get(ref.client);
    if (!q) {
      q = { urgent: new JobList(), normal: new JobList(), pass: this.now };
      this.clients.set(ref.client, q);
    } else if (q.urgent.length === 0 && q.normal.length === 0) {
      q.pass = Math.max(q.pass, this.now);
    }
    const list = ref.urgent ? q.urgent : q.normal;
    if (front) list.unshift(ref.job);
    else list.push(ref.job);
    this.size++;
  }

  remove(ref: QueuedRef): boolean {
    const q = this.clients.get(ref.client);
    const list = q && (ref.urgent ? q.urgent : q.normal);
    if (!list?.remove(ref.job)) return false;
    this.size--;
    return true;
  }

  /**
   * Candidates in the order they should be served: urgent tier first, each tier by
   * client virtual time, and within a client its jobs in submission order. At most
   * `perClient` jobs of each client are offered (enough to skip a few held ones).
   */
  *candidates(perClient = 8): Generator<QueuedRef> {
    for (const urgent of [true, false]) {
      const ordered = [...this.clients.entries()]
        .filter(([, q]) => (urgent ? q.urgent : q.normal).length > 0)
        .sort((a, b) => a[1].pass - b[1].pass || (a[0] < b[0] ? -1 : 1));
      for (const [client, q] of ordered) {
        const list = urgent ? q.urgent : q.normal;
        for (let i = 0; i < Math.min(perClient, list.length); i++) yield { job: list.at(i)!, client, urgent };
      }
    }
  }

  /** Takes a job that `candidates` offered: it leaves the queue and its client pays for it. */
  take(ref: QueuedRef): void {
    if (!this.remove(ref)) return;
    const q = this.clients.get(ref.client)!;
    this.now = Math.max(this.now, q.pass);
    q.pass += 1 / Math.max(this.rateOf(ref.client), 1e-9);
  }

  /** Queued jobs per client: [urgent, normal]. */
  byClient(): Map<string, { urgent: number; normal: number }> {
    const out = new Map<string, { urgent: number; normal: number }>();
    for (const [client, q] of this.clients) {
      if (q.urgent.length || q.normal.length) out.set(client, { urgent: q.urgent.length, normal: q.normal.length });
    }
    return out;
  }
}
