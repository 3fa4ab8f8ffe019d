/**
 * Takes secret values out of log text before it leaves the worker. A value can be split
 * across two pieces of output, so `safeLength` tells how much of a text can go out now:
 * a tail that could be the start of a secret waits for the text that follows it.
 */
export const REDACTED = '[secret]';

export class Redactor {
  /** Longest first, so that a secret containing another is replaced whole. */
  private readonly values: string[];

  constructor(secrets: Iterable<Uint8Array>) {
    const values = new Set<string>();
    for (const secret of secrets) {
      const text = Buffer.from(secret).toString('utf8');
      // A secret file usually ends in a newline: the value is what lies between the
      // blanks (which covers `$(cat file)` too), and the log keeps its line breaks.
      const value = text.trim() === '' ? text : text.trim();
      if (value !== '') values.add(value);
    }
    this.values = [...values].sort((a, b) => b.length - a.length);
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
