/**
 * A build log cut into steps, for folding, with numbered lines. The engine heads every
 * snapshot step with its op (`/src: (run (shell "make"))`, `(from busybox)`, `(build
 * stage ...)`, possibly numbered `[2/5] ...` by the CLI) and ends it with `---> saved as
 * "<id>"` or, for a cache hit, `---> using "<id>" from cache`. The sectioner turns text,
 * chunk by chunk, into events (a step begins, lines of output, possibly marking the step
 * a cache hit) that both the static page and the live tail render the same way.
 *
 * Every event says where it ends in the log, in bytes (`end`): the live stream uses it as
 * the event's ID, so that a page that reconnects gets only what comes after what it has.
 * The same chunks always give the same events, so a replay finds the same boundaries.
 */
import { AnsiRenderer } from './ansi-html.js';
import { escapeHtml } from './html.js';

export type LogEvent =
  | { readonly t: 'step'; readonly title: string; readonly end: number }
  | { readonly t: 'text'; readonly html: string; readonly end: number; readonly cached?: true };

const ANSI = /\x1b\[[0-9;?]*[@-~]/g;
const STEP = /^(?:\[\d+\/\d+\] )?(?:\((?:from|build) |[^ ]*: \((?:run|copy) )/;
const UTF8 = new TextEncoder();
const CACHED = /^---> using "[^"]{1,128}" from cache/;

export class LogSectioner {
  private readonly ansi = new AnsiRenderer();
  private partial = '';
  private lineNumber = 0;
  private offset = 0;
  private partialAt: number | undefined;

  /**
   * Events for `text`, written at `at` (epoch ms, shown per line when known); a line not
   * yet ended is held until it is (or until `flush`).
   */
  feed(text: string, at?: number): LogEvent[] {
    const data = this.partial + text;
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

  flush(): LogEvent[] {
    const rest = this.partial;
    const at = this.partialAt;
    this.partial = '';
    this.partialAt = undefined;
    return rest ? this.lines(rest, at, at) : [];
  }

  /** `firstAt`: the time of the first line (begun in an earlier chunk); `at`: of the others. */
  private lines(text: string, firstAt: number | undefined, at: number | undefined): LogEvent[] {
    const events: LogEvent[] = [];
    let plain = '';
    let cached = false;
    const emitText = () => {
      if (plain) events.push({ t: 'text', html: plain, end: this.offset, ...(cached ? { cached: true as const } : {}) });
      plain = '';
      cached = false;
    };
    text.split(/(?<=\n)/).forEach((line, i) => {
      const content = line.replace(/\r?\n$/, '');
      const bare = content.replace(ANSI, '');
      const lineAt = i === 0 ? firstAt : at;
      const bytes = UTF8.encode(line).length;
      if (STEP.test(bare)) {
        emitText();
        this.offset += bytes;
        // The heading keeps its colours, but they must not leak into the step's output.
        events.push({ t: 'step', title: this.numbered(content, lineAt, new AnsiRenderer()), end: this.offset });
        return;
      }
      this.offset += bytes;
      if (CACHED.test(bare)) cached = true;
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
