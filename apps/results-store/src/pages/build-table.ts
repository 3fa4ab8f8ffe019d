/** The table of builds shared by the build list, a job's history and the failure list. */
import type { BuildSummary } from '../queries/build-queries.js';
import { formatDuration, html, time, type Html } from '../view/html.js';
import { stateLabel } from '../view/layout.js';

export function buildTable(builds: readonly BuildSummary[], caption: string, options: { showFailure?: boolean } = {}): Html {
  if (!builds.length) return html`<p class="muted">No builds match.</p>`;
  return html`<div class="scroll"><table><caption class="muted">${caption}</caption>
<thead><tr><th scope="col">Build</th><th scope="col">Job</th><th scope="col">Status</th><th scope="col">Pool</th><th scope="col" class="wide">Platform</th><th scope="col" class="wide">Client</th><th scope="col">Finished</th><th scope="col" class="wide">Took</th><th scope="col" class="wide">Cached</th>${options.showFailure ? html`<th scope="col">Reason</th>` : ''}</tr></thead>
<tbody>${builds.map(
    (b) =>
      html`<tr><td class="mono"><a href="/builds/${b.id}">${b.id}</a></td><td><a href="/jobs/${encodeURIComponent(b.job)}">${b.job}</a></td><td>${stateLabel(b.state)}</td><td>${b.pool}</td><td class="wide">${b.platform}</td><td class="wide">${b.client}</td><td>${time(b.finishedAt)}</td><td class="wide">${formatDuration(b.durationMs)}</td><td class="wide">${b.stepsCached}/${b.stepsTotal}</td>${options.showFailure ? html`<td>${b.failure ?? ''}</td>` : ''}</tr>`,
  )}</tbody></table></div>`;
}

/**
 * Links between the pages of a list: the newest page, the newer one (`after` the first
 * row) and the older one (`before` the last row), keeping the filters and the order.
 */
export function pager(path: string, params: Record<string, string | undefined>, page: { next?: string; prev?: string }, cursorGiven: boolean): Html {
  if (!page.next && !page.prev && !cursorGiven) return html``;
  const href = (cursor: Record<string, string>) => {
    const q = new URLSearchParams(Object.entries({ ...params, ...cursor }).filter((e): e is [string, string] => Boolean(e[1])));
    return `${path}${q.size ? `?${q.toString()}` : ''}`;
  };
  return html`<nav class="pager" aria-label="Pages"><ul>
<li>${cursorGiven ? html`<a href="${href({})}" rel="first">⇤ Newest</a>` : html`<span class="muted">⇤ Newest</span>`}</li>
<li>${page.prev ? html`<a href="${href({ after: page.prev })}" rel="prev">← Newer</a>` : html`<span class="muted">← Newer</span>`}</li>
<li>${page.next ? html`<a href="${href({ before: page.next })}" rel="next">Older →</a>` : html`<span class="muted">Older →</span>`}</li>
</ul></nav>`;
}
