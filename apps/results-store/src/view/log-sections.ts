/**
 * A build log cut into steps, for folding, with numbered lines. The worker puts the
 * engine's step boundaries into the log stream between its text (`LogStep`, issue 12):
 * a step starts (its heading is the first line after it) and finishes (its snapshot,
 * whether it was a cache hit, how long it took). The sectioner turns the log, piece by
 * piece, into events that both the static page and the live tail render the same way.
 * A log with no boundaries (stored before they were sent, or uploaded) is all preamble:
 * numbered lines, no folding. The text is never read for structure, so output that looks
 * like a heading is output.
 *
 * Every event says where it ends in the log (`end`): the bytes of text before it, plus
 * one for each step boundary. The live stream uses it as the event's ID, so that a page
 * that reconnects gets only what comes after what it has. The same pieces always give
 * the same events, so a replay finds the same positions.
 */
import type { LogStep } from '@cairn/contracts';
import { AnsiRenderer } from './ansi-html.js';
import { escapeHtml } from './html.js';

/**
 * `step`: step `n` (1, 2, 3... in the order they started) begins, `title` its heading
 * line; `done`: step `n` finished.
 */
export type LogEvent =
  | { readonly t: 'step'; readonly n: number; readonly title: string; readonly end: number }
  | { readonly t: 'text'; readonly html: string; readonly end: number }
  | { readonly t: 'done'; readonly n: number; readonly cached: boolean; readonly ms: number; readonly end: number };

/** A piece of a log: text, or a step boundary (with empty text), as a LogChunk carries them. */
export interface LogPiece {
  readonly text: string;
  readonly step?: LogStep | undefined;
}

const UTF8 = new TextEncoder();

export class LogSectioner {
  private readonly ansi = new AnsiRenderer();
  private partial = '';
  private lineNumber = 0;
  private offset = 0;
  private partialAt: number | undefined;
  private steps = 0;
  /** The step started last, until its heading line has come. */
  private opening: { n: number; heading: string } | undefined;
  /** The step each stage (child build) started last: child builds run at once. */
  private readonly current = new Map<string, number>();

  /**
   * Events for `piece`, written at `at` (epoch ms, shown per line when known); a line not
   * yet ended is held until it is (or until a step boundary or `flush`).
   */
  feed(piece: LogPiece, at?: number): LogEvent[] {
    if (piece.step) return [...this.endLine(), ...this.boundary(piece.step)];
    const data = this.partial + piece.text;
    // A line's time is when it began to be written.
    const lineAt = this.partialAt ?? at;
    const end = data.lastIndexOf('\n');
    if (end < 0) {
      this.partial = data;
      this.partialAt = lineAt;
      return [];
    }
    this.partial = data.slice(end + 1);
    this.partialAt = this.partial ? at : undefined;
    return this.lines(data.slice(0, end + 1), lineAt, at);
  }

  /** The end of the log: what is held is shown. */
  flush(): LogEvent[] {
    return [...this.endLine(), ...this.headingless()];
  }

  private endLine(): LogEvent[] {
    const rest = this.partial;
    const at = this.partialAt;
    this.partial = '';
    this.partialAt = undefined;
    return rest ? this.lines(rest, at, at) : [];
  }

  private boundary(step: LogStep): LogEvent[] {
    const events = this.headingless();
    this.offset += 1;
    if (step.t === 'started') {
      const n = ++this.steps;
      this.opening = { n, heading: step.heading };
      this.current.set(step.stage, n);
      return events;
    }
    const n = this.current.get(step.stage);
    if (n !== undefined) events.push({ t: 'done', n, cached: step.cached, ms: step.ms, end: this.offset });
    return events;
  }

  /** A step whose heading line never came (the log was cut) is titled by its boundary. */
  private headingless(): LogEvent[] {
    const opening = this.opening;
    if (!opening) return [];
    this.opening = undefined;
    return [{ t: 'step', n: opening.n, title: escapeHtml(opening.heading), end: this.offset }];
  }

  /** `firstAt`: the time of the first line (begun in an earlier piece); `at`: of the others. */
  private lines(text: string, firstAt: number | undefined, at: number | undefined): LogEvent[] {
    const events: LogEvent[] = [];
    let plain = '';
    const emitText = () => {
      if (plain) events.push({ t: 'text', html: plain, end: this.offset });
      plain = '';
    };
    text.split(/(?<=\n)/).forEach((line, i) => {
      const content = line.replace(/\r?\n$/, '');
      const lineAt = i === 0 ? firstAt : at;
      const opening = this.opening;
      if (opening) emitText();
      this.offset += UTF8.encode(line).length;
      if (opening) {
        this.opening = undefined;
        // The heading keeps its colours, but they must not leak into the step's output.
        events.push({ t: 'step', n: opening.n, title: this.numbered(content, lineAt, new AnsiRenderer()), end: this.offset });
        return;
      }
      plain += this.numbered(content, lineAt, this.ansi);
    });
    emitText();
    return events;
  }

  /** One line as HTML, with its number as a link to itself (`#L12`) and its time. */
  private numbered(content: string, at: number | undefined, ansi: AnsiRenderer): string {
    const n = ++this.lineNumber;
    const time = at === undefined ? '' : ` data-ts="${escapeHtml(new Date(at).toISOString().slice(11, 23))}"`;
    return `<span class="l" id="L${n}"><a class="n" href="#L${n}" data-n="${n}"${time} aria-hidden="true" tabindex="-1"></a>${ansi.line(content)}</span>`;
  }
}
