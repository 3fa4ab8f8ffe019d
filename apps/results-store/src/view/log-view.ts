/**
 * The stored log of a finished build as HTML: output before the first step, then one
 * `<details>` per step, folded except the last one (where a failure shows, marked so
 * that the page opens and scrolls to it), with cache hits and durations marked and
 * every line numbered. The live page builds the same structure from the same events
 * (browser/app.ts).
 */
import { replayLog, type LogIndex } from '../log-index.js';
import { formatDuration, html, trusted, type Html } from './html.js';
import { LogSectioner, type LogEvent } from './log-sections.js';

interface Section {
  title?: string;
  body: string;
  cached: boolean;
  ms?: number;
}

export function sectionsOf(events: readonly LogEvent[]): Section[] {
  const sections: Section[] = [{ body: '', cached: false }];
  for (const e of events) {
    if (e.t === 'step') sections[e.n] = { title: e.title, body: '', cached: false };
    else if (e.t === 'done') Object.assign(sections[e.n] ?? {}, { cached: e.cached, ms: e.ms });
    else sections[sections.length - 1]!.body += e.html;
  }
  return sections;
}

/** `failed`: the build failed, in its last step; `index`: the log's times and steps, when stored. */
export function renderLog(text: string, options: { failed?: boolean; index?: LogIndex | undefined } = {}): Html {
  const sectioner = new LogSectioner();
  const events: LogEvent[] = [];
  for (const { piece, at } of replayLog(text, options.index)) events.push(...sectioner.feed(piece, at));
  events.push(...sectioner.flush());
  return renderSections(sectionsOf(events), options.failed ?? false);
}

function renderSections(sections: Section[], failed: boolean): Html {
  const last = sections.length - 1;
  return html`<div class="log" id="log">${sections.map((s, i) =>
    s.title === undefined
      ? s.body
        ? html`<pre class="pre">${trusted(s.body)}</pre>`
        : ''
      : html`<details class="step${s.cached ? ' cached' : ''}${failed && i === last ? ' failing' : ''}"${failed && i === last ? trusted(' id="failed-step"') : ''}${i === last ? trusted(' open') : ''}><summary>${trusted(s.title)}${s.cached ? html` <span class="hit">cache hit</span>` : ''}${s.ms === undefined ? '' : html` <span class="took">${formatDuration(s.ms)}</span>`}${failed && i === last ? html` <span class="failed-mark">failed</span>` : ''}</summary><pre>${trusted(s.body)}</pre></details>`,
  )}</div>`;
}

/**
 * The tools above a log, shown by the page's script (they need it): search with
 * next/previous; per-line times for a live log and a stored one that kept them;
 * following the newest line of a live log.
 */
export function logTools(options: { live?: boolean; times?: boolean }): Html {
  return html`<div class="log-tools filters" id="log-tools" hidden>
<label>Search the log<input type="search" id="log-search" autocomplete="off"></label>
<button type="button" id="log-prev" aria-label="Previous match">↑</button><button type="button" id="log-next" aria-label="Next match">↓</button>
<output id="log-search-count" aria-live="polite"></output>
${options.live || options.times ? html`<label class="check"><input type="checkbox" id="log-times"> Times</label>` : ''}${options.live ? html`<label class="check"><input type="checkbox" id="log-follow" checked> Follow</label>` : ''}</div>`;
}
