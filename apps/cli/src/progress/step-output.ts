import { TextDecoder } from 'node:util';
import { EscapeFilter } from '../terminal.js';

/**
 * Step output as text to print: decoded per stage (a UTF-8 character may be split
 * between chunks, and child builds' chunks interleave), with escape sequences other
 * than colours removed unless --raw asked for them.
 */
export class StepOutput {
  private readonly decoders = new Map<string, { text: TextDecoder; escapes: EscapeFilter }>();

  constructor(private readonly raw: boolean) {}

  decode(stage: string, data: Uint8Array): string {
    let d = this.decoders.get(stage);
    if (!d) {
      d = { text: new TextDecoder(), escapes: new EscapeFilter() };
      this.decoders.set(stage, d);
    }
    const s = d.text.decode(data, { stream: true });
    return this.raw ? s : d.escapes.push(s);
  }
}
