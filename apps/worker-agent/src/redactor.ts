import { MASK, maskPatterns } from '@cairn/builder';

/**
 * Takes secret values out of log text before it leaves the worker. The builder already
 * masks step output; this covers the rest of the log (engine notes, the failure message)
 * with the same forms and threshold (see @cairn/builder maskPatterns). A value can be
 * split across two pieces of output, so `safeLength` tells how much of a text can go out
 * now: a tail that could be the start of a secret waits for the text that follows it.
 */
export const REDACTED = MASK;

export class Redactor {
  /** Longest first, so that a secret containing another is replaced whole. */
  private readonly values: string[];

  constructor(secrets: Iterable<Uint8Array>) {
    this.values = [...new Set(maskPatterns(secrets).map((p) => p.toString('utf8')))].sort((a, b) => b.length - a.length);
  }

  get empty(): boolean {
    return this.values.length === 0;
  }

  redact(text: string): string {
    let out = text;
    for (const value of this.values) out = out.split(value).join(REDACTED);
    return out;
  }

  /** How much of (already redacted) `text` can be published without cutting a secret in two. */
  safeLength(text: string): number {
    let hold = 0;
    for (const value of this.values) {
      const longest = Math.min(value.length - 1, text.length);
      for (let n = longest; n > hold; n--) {
        if (text.endsWith(value.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    return text.length - hold;
  }
}
