/**
 * The stored log of a finished build as HTML: output before the first step, then one
 * `<details>` per step, folded except the last one (where a failure shows), with cache
 * hits marked. The live page builds the same structure from the same events (app.js).
 */
import { html, trusted, type Html } from './html.js';
import { LogSectioner, type LogEvent } from './log-sections.js';

interface Section {
  title?: string;
  body: string;
  cached: boolean;
}

export function sectionsOf(events: readonly LogEvent[]): Section[] {
  const sections: Section[] = [{ body: '', cached: false }];
  for (const e of events) {
    const current = sections[sections.length - 1]!;
    if (e.t === 'step') sections.push({ title: e.title, body: '', cached: false });
    else if (e.t === 'text') current.body += e.html;
    else if (e.t === 'cached') current.cached = true;
  }
  return sections;
}

export function renderLog(text: string): Html {
  const sectioner = new LogSectioner();
  const sections = sectionsOf([...sectioner.feed(text), ...sectioner.flush()]);
  return renderSections(sections);
}

export function renderSections(sections: Section[]): Html {
  const last = sections.length - 1;
  return html`<div class="log" id="log">${sections.map((s, i) =>
    s.title === undefined
      ? s.body
        ? html`<pre class="pre">${trusted(s.body)}</pre>`
        : ''
      : html`<details class="step${s.cached ? ' cached' : ''}"${i === last ? trusted(' open') : ''}><summary>${trusted(s.title)}${s.cached ? html` <span class="hit">cache hit</span>` : ''}</summary><pre>${trusted(s.body)}</pre></details>`,
  )}</div>`;
}
