/**
 * Which workers have recently built which cache hint. A worker that built a hint holds
 * most of the snapshots a job with that hint needs, so the job runs mostly from cache
 * there. Knowledge fades: after `ttlMs` without use a hint is forgotten for that worker.
 */
export class CacheAffinity {
  private readonly byHint = new Map<string, Map<string, number>>();

  constructor(private readonly ttlMs: number) {}

  note(hint: string, worker: string, at: number): void {
    if (!hint) return;
    let workers = this.byHint.get(hint);
    if (!workers) this.byHint.set(hint, (workers = new Map()));
    workers.set(worker, at);
  }

  /** Workers that hold `hint`, freshest first. */
  holders(hint: string, now: number): string[] {
    const workers = this.byHint.get(hint);
    if (!workers) return [];
    const fresh: [string, number][] = [];
    for (const [worker, at] of workers) {
      if (now - at <= this.ttlMs) fresh.push([worker, at]);
      else workers.delete(worker);
    }
    if (workers.size === 0) this.byHint.delete(hint);
    return fresh.sort((a, b) => b[1] - a[1]).map(([w]) => w);
  }

  hintsOf(worker: string, now: number): string[] {
    const out: string[] = [];
    for (const [hint, workers] of this.byHint) {
      const at = workers.get(worker);
      if (at !== undefined && now - at <= this.ttlMs) out.push(hint);
    }
    return out;
  }

  forgetWorker(worker: string): void {
    for (const [hint, workers] of this.byHint) {
      workers.delete(worker);
      if (workers.size === 0) this.byHint.delete(hint);
    }
  }
}
