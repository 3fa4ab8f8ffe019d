import type { Builder } from '@cairn/builder';
import type { AgentMetrics } from './metrics.js';

/**
 * Keeps the store from filling up. Below `pruneBelowBytes` free, it prunes the store
 * (Builder.prune: least recently used leaves first, never a snapshot a running build
 * stands on) until there is room again or nothing is left to prune; below half of it,
 * the worker refuses new jobs until space comes back.
 */
export class DiskGuard {
  freeBytes = 0;
  totalBytes = 0;
  /** When the store was last pruned (by this process). */
  lastPruneAt: number | undefined;
  private checking: Promise<void> | undefined;

  constructor(
    private readonly builder: Builder,
    private readonly pruneBelowBytes: number,
    private readonly metrics: AgentMetrics,
    private readonly log: (message: string) => void,
  ) {}

  /** Why the worker takes no job now, or undefined. */
  get refusal(): string | undefined {
    if (this.pruneBelowBytes === 0 || this.freeBytes >= this.pruneBelowBytes / 2) return undefined;
    return `low disk: the ${this.builder.store.kind} store at ${this.builder.store.root} has ${this.freeBytes} bytes free, below half of the prune threshold ${this.pruneBelowBytes}`;
  }

  /** Measures free space and prunes when it is low; concurrent calls share one check. */
  check(): Promise<void> {
    this.checking ??= this.run().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private async run(): Promise<void> {
    await this.measure();
    if (this.pruneBelowBytes === 0 || this.freeBytes >= this.pruneBelowBytes) return;
    this.metrics.pruneEvents.inc();
    this.lastPruneAt = Date.now();
    const before = this.freeBytes;
    let removed = 0;
    while (this.freeBytes < this.pruneBelowBytes) {
      // A batch, then measure again: deleting a leaf can make its parent the next one.
      const batch = await this.builder.prune(Date.now(), 8);
      removed += batch.length;
      this.metrics.prunedSnapshots.inc(batch.length);
      await this.measure();
      if (batch.length === 0) break;
    }
    this.log(
      `store ${this.builder.store.kind}:${this.builder.store.root} had ${before} bytes free (threshold ${this.pruneBelowBytes}): pruned ${removed} snapshot(s), now ${this.freeBytes} bytes free`,
    );
  }

  private async measure(): Promise<void> {
    const df = await this.builder.store.df();
    this.freeBytes = df.bytesFree;
    this.totalBytes = df.bytesTotal;
    this.metrics.freeBytes.set(df.bytesFree);
  }
}
