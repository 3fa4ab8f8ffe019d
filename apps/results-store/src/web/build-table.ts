/** The table of builds shared by the build list, a job's history and the failure list. */
import type { BuildSummary } from '../queries/build-queries.js';
import { formatDuration, html, time, type Html } from './html.js';
import { stateLabel } from './layout.js';

export function buildTable(builds: readonly BuildSummary[], caption: string, options: { showFailure?: boolean } = {}): Html {
  if (!builds.length) return html`<p class="muted">No builds match.</p>`;
  return html`<div class="scroll"><table><caption class="muted">${caption}</caption>
<thead><tr><th scope="col">Build</th><th scope="col">Job</th><th scope="col">Status</th><th scope="col">Pool</th><th scope="col" class="wide">Platform</th><th scope="col" class="wide">Client</th><th scope="col">Finished</th><th scope="col" class="wide">Took</th><th scope="col" class="wide">Cached</th>${options.showFailure ? html`<th scope="col">Reason</th>` : ''}</tr></thead>
<tbody>${builds.map(
    (b) => html`<tr><td class="mono"><a href="/builds/${b.id}">${b.id}</a></td><td><a href="/jobs/${encodeURIComponent(b.job)}">${b.job}</a></td><td>${stateLabel(b.state)}</td><td>${b.pool}</td><td class="wide">${b.platform}</td><td class="wide">${b.client}</td><td>${time(b.finishedAt)}</td><td class="wide">${formatDuration(b.durationMs)}</td><td class="wide">${b.stepsCached}/${b.stepsTotal}</td>${options.showFailure ? html`<td>${b.failure ?? ''}</td>` : ''}</tr>`,
  )}</tbody></table></div>`;
}

export function olderLink(path: string, params: Record<string, string | undefined>, next: string | undefined): Html {
  if (!next) return html``;
  const q = new URLSearchParams(Object.entries({ ...params, before: next }).filter((e): e is [string, string] => Boolean(e[1])));
  return html`<p><a href="${path}?${q.toString()}" rel="next">Older builds →</a></p>`;
}
