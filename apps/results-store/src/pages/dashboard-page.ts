/** The front page: what is queued and running now (live), the workers, the latest results. */
import type { BuildSummary } from '../queries/build-queries.js';
import type { LiveJob } from '../live/live-board.js';
import type { PoolView, QueueView, View, WorkerView } from '../live/scheduler-views.js';
import { buildTable } from './build-table.js';
import { formatBytes, html, time, type Html } from '../view/html.js';
import { page, stateLabel } from '../view/layout.js';

export interface DashboardData {
  readonly live: readonly LiveJob[];
  readonly pools: View<PoolView[]>;
  readonly workers: View<WorkerView[]>;
  readonly queues: View<QueueView[]>;
  readonly recent: readonly BuildSummary[];
}

function liveRows(jobs: readonly LiveJob[]): Html {
  return html`${jobs.map(
    (j) =>
      html`<tr data-job="${j.job}" data-event="${JSON.stringify(j)}"><td class="mono"><a href="/builds/${j.job}">${j.job}</a></td><td>${j.name}</td><td>${j.pool}</td><td class="wide">${j.client}</td><td>${stateLabel(j.state)}</td><td class="wide">${j.worker ?? ''}</td><td class="wide">${time(j.since)}</td></tr>`,
  )}`;
}

function liveTable(id: 'queued' | 'running', title: string, jobs: readonly LiveJob[]): Html {
  return html`<section aria-labelledby="${id}-title"><h2 id="${id}-title">${title} (<span id="${id}-count" aria-live="polite">${jobs.length}</span>)</h2>
<div class="scroll"><table><thead><tr><th scope="col">Build</th><th scope="col">Job</th><th scope="col">Pool</th><th scope="col" class="wide">Client</th><th scope="col">State</th><th scope="col" class="wide">Worker</th><th scope="col" class="wide">Since</th></tr></thead>
<tbody id="${id}-rows">${liveRows(jobs)}</tbody></table></div></section>`;
}

function unavailable(what: string, view: { ok: false; error: string }): Html {
  return html`<p class="note">${what} unavailable: ${view.error}</p>`;
}

export function dashboardPage(data: DashboardData): Html {
  const queued = data.live.filter((j) => j.state === 'queued');
  const running = data.live.filter((j) => j.state === 'assigned' || j.state === 'running');
  const pools = data.pools.ok
    ? html`<div class="scroll"><table><thead><tr><th scope="col">Pool</th><th scope="col">Queued</th><th scope="col">Running</th><th scope="col">Workers</th><th scope="col">State</th></tr></thead><tbody>${data.pools.value.map(
        (p) =>
          html`<tr><td><a href="/pools/${encodeURIComponent(p.pool)}">${p.pool}</a></td><td>${p.queued}</td><td>${p.running}</td><td>${p.workers}</td><td>${p.paused ? 'paused' : 'active'}</td></tr>`,
      )}</tbody></table></div>`
    : unavailable('Pools', data.pools);
  const queues = data.queues.ok
    ? data.queues.value.length
      ? html`<div class="scroll"><table><thead><tr><th scope="col">Pool</th><th scope="col">Client</th><th scope="col">Urgent</th><th scope="col">Normal</th></tr></thead><tbody>${data.queues.value.map(
          (q) => html`<tr><td>${q.pool}</td><td>${q.client}</td><td>${q.urgent}</td><td>${q.normal}</td></tr>`,
        )}</tbody></table></div>`
      : html`<p class="muted">No queued jobs.</p>`
    : unavailable('Queues', data.queues);
  const workers = data.workers.ok
    ? html`<div class="scroll"><table><thead><tr><th scope="col">Worker</th><th scope="col">Pool</th><th scope="col" class="wide">Platform</th><th scope="col">Load</th><th scope="col" class="wide">Cache hints</th><th scope="col" class="wide">Free disk</th><th scope="col">State</th><th scope="col" class="wide">Last seen</th></tr></thead><tbody>${data.workers.value.map(
        (w) =>
          html`<tr><td><a href="/workers/${encodeURIComponent(w.worker)}">${w.worker}</a></td><td>${w.pool}</td><td class="wide">${w.platform}</td><td><meter min="0" max="${w.capacity}" value="${w.running.length}" aria-label="${w.worker} load">${w.running.length}/${w.capacity}</meter> ${w.running.length}/${w.capacity}</td><td class="wide">${w.hints}</td><td class="wide">${formatBytes(w.freeBytes)}</td><td>${
            [!w.connected && 'disconnected', w.paused && 'paused', w.draining && 'draining', w.refusing && 'refusing'].filter(Boolean).join(', ') || 'ready'
          }</td><td class="wide">${time(w.lastSeen)}</td></tr>`,
      )}</tbody></table></div>`
    : unavailable('Workers', data.workers);
  return page({
    title: 'Dashboard',
    section: 'dashboard',
    body: html`<h1>Dashboard</h1><div data-live-board>
${liveTable('queued', 'Queued', queued)}
${liveTable('running', 'Running', running)}</div>
<section aria-labelledby="pools-title"><h2 id="pools-title">Pools</h2>${pools}</section>
<section aria-labelledby="queues-title"><h2 id="queues-title">Queues by client</h2>${queues}</section>
<section aria-labelledby="workers-title"><h2 id="workers-title">Workers</h2>${workers}</section>
<section aria-labelledby="recent-title"><h2 id="recent-title">Latest results</h2>${buildTable(data.recent, 'The most recently finished builds')}<p><a href="/builds">All builds</a></p></section>`,
  });
}
