/** The build list (with filters), the job list, one job's history, and the failure list. */
import type { BuildFilter, BuildSummary, Facets, JobSummary, Page } from '../queries/build-queries.js';
import { SORTS, STATES } from '../queries/build-queries.js';
import { buildTable, pager } from './build-table.js';
import { historyChart } from './history-chart.js';
import { html, isoTime, time, trusted, type Html } from '../view/html.js';
import { page, stateLabel } from '../view/layout.js';

function select(name: string, label: string, options: readonly string[], current: string | undefined): Html {
  return html`<label>${label}<select name="${name}"><option value="">any</option>${options.map(
    (o) => html`<option${o === current ? html` selected` : ''}>${o}</option>`,
  )}</select></label>`;
}

const SORT_LABELS: Record<(typeof SORTS)[number], string> = {
  finished: 'newest first',
  started: 'latest start first',
  duration: 'longest first',
  name: 'job name',
};

/** A day of a date-range filter, as the form's date input gives it back. */
const dayOf = (ms: number | undefined, minus = 0) => (ms === undefined ? undefined : isoTime(ms - minus).slice(0, 10));

export function buildsPage(filter: BuildFilter, facets: Facets, builds: Page<BuildSummary>, total: number): Html {
  const from = dayOf(filter.from);
  // The filter's `to` is the start of the day after the last one included.
  const to = dayOf(filter.to, 86_400_000);
  const params = {
    pool: filter.pool,
    platform: filter.platform,
    state: filter.state,
    client: filter.client,
    q: filter.q,
    tag: filter.tag,
    sort: filter.sort,
    from,
    to,
  };
  const sort = filter.sort ?? 'finished';
  return page({
    title: 'Builds',
    section: 'builds',
    body: html`<h1>Builds</h1>
<form class="filters" method="get" action="/builds" role="search" aria-label="Filter builds">
<label>Search<input type="search" name="q" value="${filter.q ?? ''}" placeholder="job name or build ID"></label>
${select('pool', 'Pool', facets.pools, filter.pool)}${select('platform', 'Platform', facets.platforms, filter.platform)}${select('state', 'Status', STATES, filter.state)}${select('client', 'Client', facets.clients, filter.client)}
<label>Finished from<input type="date" name="from" value="${from ?? ''}"></label><label>to<input type="date" name="to" value="${to ?? ''}"></label>
<label>Order<select name="sort">${SORTS.map((s) => html`<option value="${s === 'finished' ? '' : s}"${s === sort ? html` selected` : ''}>${SORT_LABELS[s]}</option>`)}</select></label>
<button type="submit">Filter</button></form>
<p id="total">${total === 1 ? '1 build' : `${total.toLocaleString('en')} builds`} match.</p>
${buildTable(builds.items, `Builds, ${SORT_LABELS[sort]}`)}${pager('/builds', params, builds, filter.before !== undefined || filter.after !== undefined)}`,
  });
}

export function jobsPage(q: string | undefined, state: string | undefined, jobs: Page<JobSummary>): Html {
  const next = jobs.next ? `/jobs?${new URLSearchParams({ ...(q ? { q } : {}), ...(state ? { state } : {}), after: jobs.next }).toString()}` : undefined;
  return page({
    title: 'Jobs',
    section: 'jobs',
    body: html`<h1>Jobs</h1>
<form class="filters" method="get" action="/jobs" role="search" aria-label="Filter jobs">
<label>Name contains<input type="search" name="q" value="${q ?? ''}"></label>${select('state', 'Last status', STATES, state)}<button type="submit">Filter</button></form>
${
  jobs.items.length
    ? html`<div class="scroll"><table><thead><tr><th scope="col">Job</th><th scope="col">Last status</th><th scope="col">Last build</th><th scope="col" class="wide">Pool</th><th scope="col">Finished</th></tr></thead><tbody>${jobs.items.map(
        (j) =>
          html`<tr><td><a href="/jobs/${encodeURIComponent(j.name)}">${j.name}</a></td><td>${j.lastState ? stateLabel(j.lastState) : ''}</td><td class="mono">${j.lastBuild ? html`<a href="/builds/${j.lastBuild}">${j.lastBuild}</a>` : ''}</td><td class="wide">${j.lastPool ?? ''}</td><td>${j.lastFinishedAt ? time(j.lastFinishedAt) : ''}</td></tr>`,
      )}</tbody></table></div>`
    : html`<p class="muted">No jobs match.</p>`
}${next ? html`<p><a href="${next}" rel="next">More jobs →</a></p>` : ''}`,
  });
}

export function jobPage(job: JobSummary, history: readonly BuildSummary[], baseUrl: string): Html {
  const badge = `/jobs/${encodeURIComponent(job.name)}/badge.svg`;
  const [latest, previous] = history;
  return page({
    title: job.name,
    section: 'jobs',
    body: html`<h1>Job ${job.name}</h1>
<p><img src="${badge}" alt="status: ${job.lastState ?? 'unknown'}"> ${latest && previous ? html`<a href="/compare?a=${previous.id}&amp;b=${latest.id}">Compare the last two builds</a>` : ''}</p>
<section aria-labelledby="chart-title"><h2 id="chart-title">Duration and outcome of the last ${history.length} builds</h2>${trusted(historyChart(history, `History of ${job.name}`))}</section>
<section aria-labelledby="badge-title"><h2 id="badge-title">Badge</h2><pre>${`![${job.name}](${baseUrl}${badge})`}</pre></section>
<section aria-labelledby="builds-title"><h2 id="builds-title">Builds</h2>${buildTable(history, `Builds of ${job.name}, newest first`)}
<p><a href="/builds?q=${encodeURIComponent(job.name)}">Search all builds of this job</a></p></section>`,
  });
}

export function failuresPage(failures: Page<BuildSummary>, before: string | undefined): Html {
  return page({
    title: 'Failures',
    section: 'failures',
    body: html`<h1>Failures</h1><p><a href="/failures.atom">Follow failures in a feed reader (Atom)</a></p>
${buildTable(failures.items, before ? 'Older failures' : 'Failed builds, newest first', { showFailure: true })}${pager('/failures', {}, failures, before !== undefined)}`,
  });
}
