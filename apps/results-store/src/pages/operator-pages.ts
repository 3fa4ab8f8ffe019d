/**
 * What operators see and do: the worker, pool and client pages, the audit log, and the action
 * buttons (forms) the build pages get for someone whose role allows them. A button is
 * rendered only for a role that may use it; the server checks the role again (and the
 * form token) when the form is posted, so a hidden button is never the protection.
 */
import type { BaseImageStatus } from '@cairn/contracts';
import type { AuditEntry } from '../actions/operator-actions.js';
import { roleAllows, type Role } from '../roles.js';
import { CSRF_FIELD } from '../auth/csrf.js';
import type { ClientView, PoolView, View, WorkerView } from '../live/scheduler-views.js';
import type { LiveJob } from '../live/live-board.js';
import type { WorkerFailure } from '../queries/worker-history.js';
import { formatBytes, html, Html, time, trusted } from '../view/html.js';
import { AnsiRenderer } from '../view/ansi-html.js';
import type { PageBytes } from './prerendered-pages.js';
import { page } from '../view/layout.js';

/** Who is looking: their role (none when not signed in) and their session's form token. */
export interface Viewer {
  readonly user?: string;
  readonly role?: Role;
  readonly csrf?: string;
}

export const mayOperate = (viewer: Viewer): boolean => viewer.role !== undefined && roleAllows(viewer.role, 'operator');
export const mayAdminister = (viewer: Viewer): boolean => viewer.role !== undefined && roleAllows(viewer.role, 'admin');

/** A one-button form posting to `action`; `back` is where the answer sends the browser. */
export function actionButton(viewer: Viewer, action: string, label: string, back: string, fields?: Html): Html {
  return html`<form method="post" action="${action}" class="action"><input type="hidden" name="${CSRF_FIELD}" value="${viewer.csrf ?? ''}"><input type="hidden" name="back" value="${back}">${fields ?? ''}<button type="submit" data-action="${action}">${label}</button></form>`;
}

/** The buttons and links a build page gets above its content. */
export function buildExtras(viewer: Viewer, id: string, facts: { live?: LiveJob | undefined; stored: boolean; retryOf?: string | undefined }): Html {
  const back = `/builds/${id}`;
  const running = facts.live && !['succeeded', 'failed', 'cancelled'].includes(facts.live.state);
  const buttons = mayOperate(viewer)
    ? html`${running ? actionButton(viewer, `/actions/jobs/${id}/cancel`, 'Cancel', back) : ''}${facts.stored ? actionButton(viewer, `/actions/builds/${id}/retry`, 'Retry', back) : ''}`
    : '';
  const link = facts.retryOf ? html`<p id="retry-of">Retry of <a href="/builds/${facts.retryOf}" class="mono">${facts.retryOf}</a></p>` : '';
  return buttons || link ? html`<div class="actions" id="build-actions">${link}${buttons}</div>` : html``;
}

function workerState(w: WorkerView): string {
  return [!w.connected && 'disconnected', w.paused && 'paused', w.draining && 'draining', w.refusing && 'refusing'].filter(Boolean).join(', ') || 'ready';
}

function workerButtons(viewer: Viewer, w: WorkerView, back: string): Html | string {
  if (!mayOperate(viewer)) return '';
  const path = (verb: string) => `/actions/workers/${encodeURIComponent(w.worker)}/${verb}`;
  return html`${w.paused || w.draining ? actionButton(viewer, path('unpause'), 'Unpause', back) : actionButton(viewer, path('pause'), 'Pause', back)}${w.draining ? '' : actionButton(viewer, path('drain'), 'Drain', back)}`;
}

function unavailable(what: string, view: { ok: false; error: string }): Html {
  return html`<p class="note">${what} unavailable: ${view.error}</p>`;
}

export function workersTable(workers: readonly WorkerView[]): Html {
  return html`<div class="scroll"><table><thead><tr><th scope="col">Worker</th><th scope="col">Pool</th><th scope="col">Load</th><th scope="col" class="wide">Free disk</th><th scope="col">State</th><th scope="col" class="wide">Last heartbeat</th></tr></thead><tbody>${workers.map(
    (w) =>
      html`<tr data-worker="${w.worker}"><td><a href="/workers/${encodeURIComponent(w.worker)}">${w.worker}</a></td><td><a href="/pools/${encodeURIComponent(w.pool)}">${w.pool}</a></td><td>${w.running.length}/${w.capacity}</td><td class="wide">${formatBytes(w.freeBytes)}</td><td>${workerState(w)}</td><td class="wide">${time(w.lastSeen)}</td></tr>`,
  )}</tbody></table></div>`;
}

export function workersPage(workers: View<WorkerView[]>): Html {
  return page({
    title: 'Workers',
    section: 'workers',
    body: html`<h1>Workers</h1><p><a href="/images">Base images</a></p>${workers.ok ? workersTable(workers.value) : unavailable('Workers', workers)}`,
  });
}

/** Clients with their rate (their share of each pool: stride scheduling) and jobs; an admin sets a rate here. */
export function clientsPage(viewer: Viewer, clients: View<ClientView[]>): Html {
  const admin = mayAdminister(viewer);
  const rateForm = (c: ClientView) =>
    actionButton(
      viewer,
      `/actions/clients/${encodeURIComponent(c.client)}/rate`,
      'Set rate',
      '/clients',
      html`<input type="number" name="rate" value="${c.rate}" min="0.001" max="1000000" step="any" required aria-label="New rate of ${c.client}">`,
    );
  const table = (list: readonly ClientView[]) =>
    list.length
      ? html`<div class="scroll"><table id="clients"><thead><tr><th scope="col">Client</th><th scope="col">Rate</th><th scope="col">Queued</th><th scope="col">Running</th><th scope="col">Finished</th>${admin ? html`<th scope="col">Change the rate</th>` : ''}</tr></thead><tbody>${list.map(
          (c) =>
            html`<tr data-client="${c.client}"><td><a href="/builds?client=${encodeURIComponent(c.client)}">${c.client}</a></td><td data-rate="${c.rate}">${c.rate}</td><td>${c.queued}</td><td>${c.running}</td><td>${c.finished}</td>${admin ? html`<td>${rateForm(c)}</td>` : ''}</tr>`,
        )}</tbody></table></div>`
      : html`<p class="muted" id="clients">No client has a rate, a job, or a finished job since the scheduler started.</p>`;
  const body = html`<h1>Clients</h1><p class="muted">A client's rate is its share of each pool: with rates 2 and 1, the first gets two jobs started for each of the second's while both wait.${admin ? '' : ' An admin can change it here.'}</p>${clients.ok ? table(clients.value) : unavailable('Clients', clients)}`;
  return page({ title: 'Clients', section: 'clients', body });
}

export function workerPage(viewer: Viewer, w: WorkerView, failures: readonly WorkerFailure[]): Html {
  const back = `/workers/${encodeURIComponent(w.worker)}`;
  const body = html`<h1>Worker ${w.worker} <span id="worker-state" class="state">${workerState(w)}</span></h1>
<div class="actions" id="worker-actions">${workerButtons(viewer, w, back)}</div>
<dl class="facts" id="worker-facts">
<dt>Pool</dt><dd><a href="/pools/${encodeURIComponent(w.pool)}">${w.pool}</a></dd>
<dt>Platform</dt><dd>${w.platform}</dd>
<dt>Capacity</dt><dd data-capacity="${w.capacity}">${w.capacity} slot(s), ${w.running.length} busy</dd>
<dt>Last heartbeat</dt><dd>${time(w.lastSeen)}</dd>
<dt>Disk free</dt><dd data-free-bytes="${w.freeBytes}">${formatBytes(w.freeBytes)}</dd>
<dt>Cache hints</dt><dd>${w.hints}</dd>
<dt>Version</dt><dd id="worker-version">${w.version ?? html`<span class="muted">not reported</span>`}</dd>
<dt>Last prune</dt><dd id="worker-last-prune">${w.lastPruneAt !== undefined ? time(w.lastPruneAt) : html`<span class="muted">none since the worker started</span>`}</dd>
</dl>
<h2>Running</h2>${w.running.length ? html`<ul id="worker-running">${w.running.map((j) => html`<li><a class="mono" href="/builds/${j}">${j}</a></li>`)}</ul>` : html`<p class="muted" id="worker-running">Nothing running.</p>`}
<h2>Recent failures on this worker</h2>${
    failures.length
      ? html`<div class="scroll"><table id="worker-failures"><thead><tr><th scope="col">Build</th><th scope="col">Job</th><th scope="col">Finished</th><th scope="col">Why</th></tr></thead><tbody>${failures.map(
          (f) =>
            html`<tr><td class="mono"><a href="/builds/${f.id}">${f.id}</a></td><td>${f.job}</td><td>${time(f.finishedAt)}</td><td>${f.failure ?? ''}</td></tr>`,
        )}</tbody></table></div>`
      : html`<p class="muted" id="worker-failures">No failed build on this worker.</p>`
  }`;
  return page({ title: `Worker ${w.worker}`, section: 'workers', body });
}

export function poolPage(viewer: Viewer, pool: PoolView, workers: readonly WorkerView[], queued: readonly LiveJob[]): Html {
  const back = `/pools/${encodeURIComponent(pool.pool)}`;
  const path = (verb: string) => `/actions/pools/${encodeURIComponent(pool.pool)}/${verb}`;
  const draining = workers.length > 0 && workers.every((w) => w.draining);
  const buttons = mayOperate(viewer)
    ? html`${pool.paused || draining ? actionButton(viewer, path('unpause'), 'Unpause', back) : actionButton(viewer, path('pause'), 'Pause', back)}${draining ? '' : actionButton(viewer, path('drain'), 'Drain', back)}`
    : '';
  const capacity = workers.reduce((n, w) => n + w.capacity, 0);
  const busy = workers.reduce((n, w) => n + w.running.length, 0);
  const body = html`<h1>Pool ${pool.pool} <span id="pool-state" class="state">${[pool.paused && 'paused', draining && 'draining'].filter(Boolean).join(', ') || 'active'}</span></h1>
<div class="actions" id="pool-actions">${buttons}</div>
<dl class="facts"><dt>Queued</dt><dd data-queued="${pool.queued}">${pool.queued}</dd><dt>Running</dt><dd>${pool.running}</dd><dt>Capacity</dt><dd data-capacity="${capacity}">${busy}/${capacity} slots busy on ${workers.length} worker(s)</dd></dl>
<p><a href="/charts?pool=${encodeURIComponent(pool.pool)}">Charts of this pool</a> · <a href="/builds?pool=${encodeURIComponent(pool.pool)}">Builds</a>${mayOperate(viewer) ? html` · <a href="/audit">Audit log</a>` : ''}</p>
<h2>Workers</h2>${workersTable(workers)}
<h2>Queued</h2>${queued.length ? html`<ul>${queued.map((j) => html`<li><a class="mono" href="/builds/${j.job}">${j.job}</a> ${j.name} (${j.client}) since ${time(j.since)}</li>`)}</ul>` : html`<p class="muted">No queued jobs seen.</p>`}`;
  return page({ title: `Pool ${pool.pool}`, section: 'workers', body });
}

type ImagesView = { ok: true; value: readonly BaseImageStatus[] } | { ok: false; error: string };

const imageHref = (name: string) => `/images/${encodeURIComponent(name)}`;

/** A rebuild button for an operator (the server checks the role again when it is posted). */
function imageRebuild(viewer: Viewer, name: string, label: string, back: string): Html | string {
  return mayOperate(viewer) ? actionButton(viewer, '/actions/images/rebuild', label, back, html`<input type="hidden" name="image" value="${name}">`) : '';
}

export function imagesPage(viewer: Viewer, images: ImagesView): Html {
  const body = images.ok
    ? html`<div class="actions" id="images-actions">${imageRebuild(viewer, 'all', 'Rebuild all', '/images')}</div><div class="scroll"><table id="images"><thead><tr><th scope="col">Image</th><th scope="col">State</th><th scope="col">Why</th><th scope="col" class="wide">Digest</th><th scope="col" class="wide">Published</th><th scope="col"></th></tr></thead><tbody>${images.value.map(
        (i) =>
          html`<tr data-image="${i.name}"><td><a href="${imageHref(i.name)}">${i.name}</a></td><td>${i.state}</td><td>${i.why}</td><td class="wide mono">${i.digest ?? ''}</td><td class="wide">${i.publishedAt ? time(i.publishedAt) : ''}</td><td>${imageRebuild(viewer, i.name, 'Rebuild', '/images')}</td></tr>`,
      )}</tbody></table></div>`
    : unavailable('Base images (from the base-image-builder)', images);
  return page({ title: 'Base images', section: 'images', body: html`<h1>Base images</h1>${body}` });
}

const buildLink = (job: string | undefined): Html =>
  job ? html`<a class="mono" href="/builds/${encodeURIComponent(job)}">${job}</a>` : html`<span class="muted">not recorded</span>`;

/**
 * One image: its tags and their digest, what it is built from and when, its last failure
 * (with the end of its build's log, `failedLog`, when that build is stored), and every
 * digest it had.
 */
export function imagePage(viewer: Viewer, image: BaseImageStatus, failedLog?: readonly string[]): Html {
  const back = imageHref(image.name);
  const f = image.failure;
  const body = html`<h1>Base image ${image.name} <span id="image-state" class="state ${image.state}">${image.state}</span></h1>
<div class="actions" id="image-actions">${imageRebuild(viewer, image.name, 'Rebuild', back)}</div>
<p id="image-why">${image.why}</p>
<h2>Tags</h2><div class="scroll"><table id="image-tags"><thead><tr><th scope="col">Tag</th><th scope="col">Digest</th></tr></thead><tbody>${image.tags.map(
    (tag) => html`<tr data-tag="${tag}"><td>${tag}</td><td class="mono">${image.digest ?? html`<span class="muted">not published</span>`}</td></tr>`,
  )}</tbody></table></div>
<dl class="facts" id="image-facts">
<dt>Published</dt><dd>${image.publishedAt ? time(image.publishedAt) : html`<span class="muted">never</span>`}</dd>
<dt>Schedule</dt><dd class="mono" id="image-schedule">${image.schedule ?? html`<span class="muted">not reported</span>`}</dd>
<dt>Next scheduled run</dt><dd>${image.nextRunAt ? time(image.nextRunAt) : html`<span class="muted">none</span>`}</dd>
<dt>Inputs digest</dt><dd class="mono" id="image-inputs">${image.inputs ?? html`<span class="muted">not computed yet</span>`}</dd>
${image.job ? html`<dt>Building</dt><dd id="image-building">${buildLink(image.job)}</dd>` : ''}
</dl>
<h2>Last failure</h2>${
    f
      ? html`<dl class="facts" id="image-failure"><dt>When</dt><dd>${time(f.at)}</dd><dt>Why</dt><dd>${f.reason}</dd><dt>Attempts</dt><dd>${f.count}</dd><dt>Build</dt><dd>${buildLink(f.job)}</dd><dt>Retry</dt><dd>${f.retryAt ? time(f.retryAt) : html`no retries left: waits for new inputs or a rebuild`}</dd></dl>${failedLogExcerpt(f.job, failedLog)}`
      : html`<p class="muted" id="image-failure">No failure of its current inputs.</p>`
  }
<h2>Published digests</h2>${
    image.history.length
      ? html`<div class="scroll"><table id="image-history"><thead><tr><th scope="col">Digest</th><th scope="col">Published</th><th scope="col">Build</th></tr></thead><tbody>${image.history.map(
          (h) => html`<tr data-digest="${h.digest}"><td class="mono">${h.digest}</td><td>${time(h.at)}</td><td>${buildLink(h.job)}</td></tr>`,
        )}</tbody></table></div>`
      : html`<p class="muted" id="image-history">Never published.</p>`
  }
<p><a href="/images">All base images</a></p>`;
  return page({ title: `Base image ${image.name}`, section: 'images', body });
}

function failedLogExcerpt(job: string | undefined, lines: readonly string[] | undefined): Html | '' {
  if (job === undefined) return '';
  if (lines === undefined)
    return html`<p class="muted" id="image-failure-log">Its build's log is not stored here (yet): see <code>cairn logs ${job}</code>.</p>`;
  // One renderer for all the lines: a colour set on one line goes on to the next, as in a terminal.
  const ansi = new AnsiRenderer();
  return html`<h3>The end of its log</h3><pre class="pre" id="image-failure-log">${trusted(lines.map((line) => ansi.line(line)).join('\n'))}</pre>
<p><a href="/builds/${encodeURIComponent(job)}#failed-step">The whole log</a></p>`;
}

export function auditPage(entries: readonly AuditEntry[], next: number | undefined): Html {
  const body = html`<h1>Audit log</h1><p class="muted">Every action taken from the dashboard, newest first.</p>
<div class="scroll"><table id="audit"><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">On</th><th scope="col">Result</th><th scope="col">Detail</th></tr></thead><tbody>${entries.map(
    (e) =>
      html`<tr data-action="${e.action}" data-result="${e.result}"><td>${time(e.at)}</td><td>${e.user} (${e.role})</td><td>${e.action}</td><td>${e.target}</td><td>${e.result}</td><td>${e.detail ?? ''}</td></tr>`,
  )}</tbody></table></div>${next !== undefined ? html`<p><a href="/audit?before=${next}">Older</a></p>` : ''}`;
  return page({ title: 'Audit log', section: 'audit', body });
}

/** The answer to an action posted by a browser that did not end well: what was tried and why it failed. */
export function actionRefusedPage(message: string, back: string): Html {
  return page({
    title: 'Action not done',
    body: html`<h1>Action not done</h1><p class="note" id="action-result">${message}</p><p><a href="${back}">Back</a></p>`,
  });
}

/**
 * A build page with its extras (buttons, the retry link) after its heading. The page
 * itself is the same for everyone (saved, cached); only a page that has extras is
 * copied to put them in.
 */
export function withExtras(rendered: Html | PageBytes, extras: Html): Html | PageBytes {
  if (!extras.value) return rendered;
  const text = rendered instanceof Html ? rendered.value : rendered.body.toString('utf8');
  const at = text.indexOf('</h1>');
  return trusted(at < 0 ? text : text.slice(0, at + 5) + extras.value + text.slice(at + 5));
}
