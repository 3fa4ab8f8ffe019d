/**
 * A build log cut into steps, for folding. The engine heads every snapshot step with
 * its op (`/src: (run (shell "make"))`, `(from busybox)`, `(build stage ...)`, possibly
 * numbered `[2/5] ...` by the CLI) and ends it with `---> saved as "<id>"` or, for a
 * cache hit, `---> using "<id>" from cache`. The sectioner turns text, chunk by chunk,
 * into events (a step begins, output, the step was a cache hit) that both the static
 * page and the live tail render the same way.
 */
import { AnsiRenderer } from './ansi-html.js';

export type LogEvent =
  | { readonly t: 'step'; readonly title: string }
  | { readonly t: 'text'; readonly html: string }
  | { readonly t: 'cached'; readonly id: string }
  | { readonly t: 'saved'; readonly id: string };

const ANSI = /\x1b\[[0-9;?]*[@-~]/g;
const STEP = /^(?:\[\d+\/\d+\] )?(?:\((?:from|build) |[^ ]*: \((?:run|copy) )/;
const NOTE = /^---> (saved as|using) "([^"]{1,128})"( from cache)?/;

export class LogSectioner {
  private readonly ansi = new AnsiRenderer();
  private partial = '';

  /** Events for `text`; a line not yet ended is held until it is (or until `flush`). */
  feed(text: string): LogEvent[] {
    const data = this.partial + text;
    const end = data.lastIndexOf('\n');
    if (end < 0) {
      this.partial = data;
      return [];
    }
    this.partial = data.slice(end + 1);
    return this.lines(data.slice(0, end + 1));
  }

  flush(): LogEvent[] {
    const rest = this.partial;
    this.partial = '';
    return rest ? this.lines(rest) : [];
  }

  private lines(text: string): LogEvent[] {
    const events: LogEvent[] = [];
    let plain = '';
    const emitText = () => {
      if (plain) events.push({ t: 'text', html: this.ansi.render(plain) });
      plain = '';
    };
    for (const line of text.split(/(?<=\n)/)) {
      const bare = line.replace(ANSI, '').replace(/\r?\n$/, '');
      if (STEP.test(bare)) {
        emitText();
        // The heading is the step's title; its colours are kept but its state must not leak into the output.
        events.push({ t: 'step', title: new AnsiRenderer().render(line.replace(/\r?\n$/, '')) });
        continue;
      }
      const note = NOTE.exec(bare);
      if (note) events.push(note[1] === 'using' ? { t: 'cached', id: note[2]! } : { t: 'saved', id: note[2]! });
      plain += line;
    }
    emitText();
    return events;
  }
}
