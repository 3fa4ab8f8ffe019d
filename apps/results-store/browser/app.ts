/**
 * The dashboard's script (bundled by bundle.mjs into dist/browser/app.js, which
 * view/assets.ts serves). A page reads whole without it; it adds:
 * - the live board ([data-live-board]), following /live/events: each job event
 *   replaces that job's row in the queued or running table;
 * - the live log ([data-live-log]), following /builds/<id>/log/events: the log comes
 *   already cut into steps and turned into HTML (view/log-sections.ts), so this only
 *   places it, the way view/log-view.ts lays out a stored log, and marks each step's
 *   cache hit and duration when it finishes. Every event carries its place in the log
 *   as its ID, so a stream that is cut resumes where the page is (`Last-Event-ID`, or
 *   `?from=` on a new connection) and no line shows twice; once the build is stored the
 *   page reloads into the stored build's page;
 * - the log tools: line permalinks (#L12, #L12-L20) highlighted and scrolled to, search
 *   with next/previous, per-line times, follow on/off, the failed step scrolled to;
 * - times shown relative ("3 min ago") with the exact UTC time on hover;
 * - a light/dark switch remembered in localStorage;
 * - the navigation's links for a role shown to a browser signed in with one.
 */
import { isRole, ROLE_COOKIE, roleAllows } from '../src/roles.js';
import { formatDuration } from '../src/view/html.js';
import type { LogEvent } from '../src/view/log-sections.js';

/** A job on the board, as /live/events sends it (live/live-board.ts). */
interface LiveJob {
  readonly job: string;
  readonly name: string;
  readonly pool: string;
  readonly client: string;
  readonly state: string;
  readonly worker?: string;
  readonly since: number;
}

function el(tag: string, attributes: Record<string, string> = {}, children: (string | Node)[] = []): HTMLElement {
  const e = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) e.setAttribute(name, value);
  for (const child of children) e.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  return e;
}

// ---- times ------------------------------------------------------------------------------

/** `2026-01-02 03:04:05 UTC`, as the server renders times. */
function exactTime(ms: number): string {
  return `${new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, '')} UTC`;
}

function relativeTime(ms: number, now: number): string {
  const s = Math.round((now - ms) / 1000);
  const ago = s >= 0;
  const a = Math.abs(s);
  const text = a < 45 ? `${a} s` : a < 45 * 60 ? `${Math.round(a / 60)} min` : a < 36 * 3600 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return ago ? `${text} ago` : `in ${text}`;
}

/** A `<time>` element showing how long ago, with the exact time on hover. */
function timeElement(ms: number): HTMLElement {
  const t = el('time', { datetime: new Date(ms).toISOString() });
  t.dataset['relative'] = '';
  showRelative(t as HTMLTimeElement, Date.now());
  return t;
}

function showRelative(t: HTMLTimeElement, now: number): void {
  const ms = Date.parse(t.dateTime);
  if (Number.isNaN(ms)) return;
  t.textContent = relativeTime(ms, now);
  t.title = exactTime(ms);
}

function relativeTimes(): void {
  const update = () => {
    const now = Date.now();
    document.querySelectorAll<HTMLTimeElement>('main time[datetime]').forEach((t) => showRelative(t, now));
  };
  update();
  setInterval(update, 30_000);
}

// ---- light and dark ---------------------------------------------------------------------

const THEME_KEY = 'cairn-theme';

function themeSwitch(): void {
  const button = document.getElementById('theme-toggle') as HTMLButtonElement | null;
  const saved = localStorage.getItem(THEME_KEY);
  if (saved === 'dark' || saved === 'light') document.documentElement.dataset['theme'] = saved;
  if (!button) return;
  const current = () => document.documentElement.dataset['theme'] ?? (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
  const label = () => {
    const dark = current() === 'dark';
    button.textContent = dark ? 'Light mode' : 'Dark mode';
    button.setAttribute('aria-pressed', String(dark));
  };
  button.hidden = false;
  label();
  button.addEventListener('click', () => {
    const next = current() === 'dark' ? 'light' : 'dark';
    document.documentElement.dataset['theme'] = next;
    localStorage.setItem(THEME_KEY, next);
    label();
  });
}

// ---- navigation -------------------------------------------------------------------------

/** Shows the links for a role (view/layout.ts `data-needs`) to a browser signed in with one that allows them. */
function roleLinks(): void {
  const cookie = document.cookie.split('; ').find((c) => c.startsWith(`${ROLE_COOKIE}=`));
  const role = cookie?.slice(ROLE_COOKIE.length + 1) ?? '';
  if (!isRole(role)) return;
  document.querySelectorAll<HTMLElement>('[data-needs]').forEach((e) => {
    const needs = e.dataset['needs'] ?? '';
    if (isRole(needs) && roleAllows(role, needs)) e.hidden = false;
  });
}

// ---- the board --------------------------------------------------------------------------

function followBoard(board: Element): void {
  const jobs = new Map<string, LiveJob>();
  board.querySelectorAll('tr[data-job]').forEach((row) => jobs.set(row.getAttribute('data-job')!, JSON.parse(row.getAttribute('data-event')!) as LiveJob));
  const render = () => {
    for (const kind of ['queued', 'running'] as const) {
      const body = document.getElementById(`${kind}-rows`);
      if (!body) continue;
      const list = [...jobs.values()]
        .filter((j) => (kind === 'queued' ? j.state === 'queued' : j.state === 'assigned' || j.state === 'running'))
        .sort((a, b) => a.since - b.since);
      body.textContent = '';
      for (const j of list) {
        const tr = el('tr', { 'data-job': j.job });
        tr.appendChild(el('td', {}, [el('a', { href: `/builds/${j.job}` }, [j.job])]));
        tr.appendChild(el('td', {}, [j.name]));
        tr.appendChild(el('td', {}, [j.pool]));
        tr.appendChild(el('td', { class: 'wide' }, [j.client]));
        tr.appendChild(el('td', { class: `state ${j.state}` }, [j.state]));
        tr.appendChild(el('td', { class: 'wide' }, [j.worker || '']));
        tr.appendChild(el('td', { class: 'wide' }, [timeElement(j.since)]));
        body.appendChild(tr);
      }
      const count = document.getElementById(`${kind}-count`);
      if (count) count.textContent = String(list.length);
    }
  };
  const events = new EventSource('/live/events');
  events.addEventListener('job', (m) => {
    const job = JSON.parse(m.data) as LiveJob;
    jobs.set(job.job, job);
    render();
  });
}

// ---- the log ----------------------------------------------------------------------------

/** Opens the folded steps around `node`. */
function reveal(node: Element): void {
  for (let d = node.closest('details'); d; d = d.parentElement?.closest('details') ?? null) d.open = true;
}

/** Highlights the lines a `#L12` or `#L12-L20` address names and scrolls to the first. */
function showPermalink(): void {
  document.querySelectorAll('#log .l.hl').forEach((l) => l.classList.remove('hl'));
  const m = /^#L(\d+)(?:-L(\d+))?$/.exec(location.hash);
  if (!m) return;
  const first = Number(m[1]);
  const last = Math.max(first, Number(m[2] ?? m[1]));
  let target: Element | null = null;
  for (let n = first; n <= last && n < first + 10_000; n++) {
    const line = document.getElementById(`L${n}`);
    if (!line) continue;
    line.classList.add('hl');
    reveal(line);
    target ??= line;
  }
  target?.scrollIntoView({ block: 'center' });
}

function permalinks(box: Element): void {
  // Shift-click on a line number extends the highlighted range from the line already chosen.
  box.addEventListener('click', (e) => {
    const a = (e.target as Element).closest('a.n');
    if (!a || !(e instanceof MouseEvent)) return;
    const n = a.getAttribute('data-n');
    const from = /^#L(\d+)/.exec(location.hash)?.[1];
    if (e.shiftKey && from && n) {
      e.preventDefault();
      const [lo, hi] = [Number(from), Number(n)].sort((x, y) => x - y);
      history.replaceState(null, '', `#L${lo}-L${hi}`);
      showPermalink();
    }
  });
  window.addEventListener('hashchange', showPermalink);
  showPermalink();
  // Again once the page has loaded: the browser's own jump to the fragment may come after this script.
  window.addEventListener('load', showPermalink, { once: true });
}

/** Search within the log: every line holding the text is marked; next/previous walk them. */
function logSearch(tools: Element, box: Element): void {
  const input = tools.querySelector<HTMLInputElement>('#log-search');
  const count = tools.querySelector('#log-search-count');
  if (!input || !count) return;
  let matches: Element[] = [];
  let at = -1;
  const go = (step: number) => {
    if (!matches.length) return;
    matches[at]?.classList.remove('current');
    at = (at + step + matches.length) % matches.length;
    const line = matches[at]!;
    line.classList.add('current');
    reveal(line);
    line.scrollIntoView({ block: 'center' });
    count.textContent = `${at + 1} of ${matches.length}`;
  };
  const find = () => {
    box.querySelectorAll('.l.match').forEach((l) => l.classList.remove('match', 'current'));
    const q = input.value.toLowerCase();
    matches = q ? [...box.querySelectorAll('.l')].filter((l) => (l.textContent ?? '').toLowerCase().includes(q)) : [];
    matches.forEach((l) => l.classList.add('match'));
    at = -1;
    count.textContent = q ? `${matches.length} found` : '';
    go(1);
  };
  input.addEventListener('input', find);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      go(e.shiftKey ? -1 : 1);
    }
  });
  tools.querySelector('#log-next')?.addEventListener('click', () => go(1));
  tools.querySelector('#log-prev')?.addEventListener('click', () => go(-1));
}

function logTools(box: Element): void {
  const tools = document.getElementById('log-tools');
  if (!tools) return;
  tools.hidden = false;
  logSearch(tools, box);
  const times = tools.querySelector<HTMLInputElement>('#log-times');
  times?.addEventListener('change', () => box.classList.toggle('times', times.checked));
}

/** Whether the live log keeps the newest line in view. */
function following(): boolean {
  return document.querySelector<HTMLInputElement>('#log-follow')?.checked ?? false;
}

function followLog(log: Element): void {
  const id = log.getAttribute('data-live-log')!;
  const box = document.getElementById('log')!;
  const status = document.getElementById('live-state');
  let current = el('pre', { class: 'pre' });
  box.appendChild(current);
  let step: HTMLDetailsElement | null = null;
  /** The ID of the last event placed: where a new connection resumes. */
  let last = '';
  let ended = false;
  const showState = (m: MessageEvent<string>) => {
    const { state } = JSON.parse(m.data) as { state: string };
    if (status) {
      status.textContent = state;
      status.className = `state ${state}`;
    }
  };
  const place = (m: MessageEvent<string>) => {
    last = m.lastEventId || last;
    const e = JSON.parse(m.data) as LogEvent;
    if (e.t === 'step') {
      if (step) step.open = false;
      step = el('details', { class: 'step', open: '', 'data-step': String(e.n) }) as HTMLDetailsElement;
      const summary = el('summary');
      // The server escaped the title (view/log-sections.ts): it is HTML.
      summary.innerHTML = e.title;
      step.appendChild(summary);
      current = el('pre');
      step.appendChild(current);
      box.appendChild(step);
    } else if (e.t === 'done') {
      // Child builds run at once: the step that finished need not be the newest.
      const done = box.querySelector(`details[data-step="${e.n}"]`);
      const summary = done?.querySelector('summary');
      if (done && summary) {
        if (e.cached) {
          done.classList.add('cached');
          summary.append(' ', el('span', { class: 'hit' }, ['cache hit']));
        }
        summary.append(' ', el('span', { class: 'took' }, [formatDuration(e.ms)]));
      }
    } else {
      current.insertAdjacentHTML('beforeend', e.html);
    }
    if (following()) window.scrollTo(0, document.body.scrollHeight);
    else if (location.hash && !box.querySelector('.l.hl')) showPermalink();
  };
  // The job was requeued: its new run's log replaces the old one.
  const reset = () => {
    box.textContent = '';
    current = el('pre', { class: 'pre' });
    box.appendChild(current);
    step = null;
  };
  // The build ended; its page exists once the results-store has stored it.
  const waitStored = () => {
    fetch(`/api/v1/builds/${id}`, { headers: { accept: 'application/json' }, credentials: 'same-origin' }).then(
      (r) => (r.ok ? location.reload() : setTimeout(waitStored, 1000)),
      () => setTimeout(waitStored, 2000),
    );
  };
  const connect = () => {
    // A browser reconnects a cut stream by itself, sending the last ID it saw; a stream
    // it gave up on (the service was away) is opened again here from the same place.
    const stream = new EventSource(`/builds/${id}/log/events${last ? `?from=${encodeURIComponent(last)}` : ''}`);
    stream.addEventListener('log', place);
    stream.addEventListener('reset', reset);
    stream.addEventListener('state', showState);
    stream.addEventListener('end', (m) => {
      ended = true;
      showState(m);
      stream.close();
      waitStored();
    });
    stream.addEventListener('stored', () => {
      ended = true;
      stream.close();
      location.reload();
    });
    stream.addEventListener('error', () => {
      if (stream.readyState === EventSource.CLOSED && !ended) setTimeout(connect, 2000);
    });
  };
  connect();
}

// ---- start ------------------------------------------------------------------------------

themeSwitch();
roleLinks();
relativeTimes();
const logBox = document.getElementById('log');
if (logBox) {
  logTools(logBox);
  permalinks(logBox);
  // A failed build opens at its failed step, unless the address names a line.
  if (!location.hash) document.getElementById('failed-step')?.scrollIntoView({ block: 'start' });
}
if ('EventSource' in window) {
  const board = document.querySelector('[data-live-board]');
  if (board) followBoard(board);
  const log = document.querySelector('[data-live-log]');
  if (log) followLog(log);
}
