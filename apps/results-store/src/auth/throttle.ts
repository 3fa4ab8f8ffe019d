/**
 * Failed sign-ins counted per client address: after LIMIT failures within a window,
 * that address gets 429 (with Retry-After) for the rest of the window, right token or
 * not, so guessing costs a minute per ten tries. Tokens are 32 random bytes, so this is
 * less about finding one than about the load and noise of trying.
 */
import { Injectable } from '@nestjs/common';

const LIMIT = 10;
const WINDOW_MS = 60_000;

@Injectable()
export class FailureThrottle {
  private readonly windows = new Map<string, { failures: number; endsAt: number }>();

  /** Seconds until `key` may try again; undefined when it may now. */
  blocked(key: string, now = Date.now()): number | undefined {
    const w = this.windows.get(key);
    if (!w || w.endsAt <= now) return undefined;
    return w.failures >= LIMIT ? Math.max(1, Math.ceil((w.endsAt - now) / 1000)) : undefined;
  }

  fail(key: string, now = Date.now()): void {
    let w = this.windows.get(key);
    if (!w || w.endsAt <= now) {
      if (this.windows.size >= 100_000) this.prune(now);
      w = { failures: 0, endsAt: now + WINDOW_MS };
      this.windows.set(key, w);
    }
    w.failures++;
  }

  private prune(now: number): void {
    for (const [k, w] of this.windows) if (w.endsAt <= now) this.windows.delete(k);
    // Still full: an address flood; forget the oldest rather than grow without bound.
    for (const k of this.windows.keys()) {
      if (this.windows.size < 100_000) break;
      this.windows.delete(k);
    }
  }
}
