/**
 * The cache hints of jobs this worker built, most recent last, bounded (the scheduler
 * takes at most 10,000 per message). Hints added since the scheduler last acknowledged
 * go out with the next heartbeat; a registration sends them all.
 */
export class HintSet {
  private readonly hints = new Map<string, true>();
  private pending: string[] = [];

  constructor(private readonly max = 10_000) {}

  add(hint: string): void {
    this.hints.delete(hint);
    this.hints.set(hint, true);
    if (this.hints.size > this.max) this.hints.delete(this.hints.keys().next().value!);
    if (!this.pending.includes(hint)) this.pending.push(hint);
    if (this.pending.length > this.max) this.pending.shift();
  }

  all(): string[] {
    return [...this.hints.keys()];
  }

  /** New since the last acknowledgement. */
  fresh(): string[] {
    return [...this.pending];
  }

  /** The first `n` fresh hints reached the scheduler. */
  acknowledge(n: number): void {
    this.pending = this.pending.slice(n);
  }
}
