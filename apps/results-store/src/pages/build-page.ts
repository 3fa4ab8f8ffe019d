/**
 * One build. Stored: its facts, the failure, how to reproduce it, its steps (cache hits
 * marked), artifacts with checksums, the folded log and the spec. Not stored yet (queued
 * or running): what the live board knows and the log tailing live.
 */
import type { LiveJob } from '../live/live-board.js';
import type { BuildDetail } from '../queries/build-queries.js';
import { formatBytes, formatDuration, html, time, type Html } from '../view/html.js';
import { page, stateLabel } from '../view/layout.js';
import { logTools } from '../view/log-view.js';

/** A file name for the spec in reproduction commands: the job's name, made safe for a shell. */
export function specFileName(job: string): string {
  const base = job.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '');
  return `${base || 'build'}.spec`;
}

const shellQuote = (s: string) => (/^[A-Za-z0-9@%+=:,./_-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export function reproduction(build: BuildDetail, baseUrl: string): { fetch: string; local: string; submit: string } {
  const file = specFileName(build.job);
  const outputs = build.artifacts.map((a) => ` --output ${shellQuote(`/${a.path}`)}`).join('');
  return {
    fetch: `curl -fsSLo ${shellQuote(file)} ${shellQuote(`${baseUrl}/builds/${build.id}/spec`)}`,
    local: `cairn build -f ${shellQuote(file)} .`,
    submit: `cairn submit --pool ${shellQuote(build.pool)} --name ${shellQuote(build.job)}${outputs} -f ${shellQuote(file)}`,
  };
}

export function buildPage(build: BuildDetail, log: Html | undefined, previous: string | undefined, baseUrl: string): Html {
  const repro = reproduction(build, baseUrl);
  return page({
    title: `${build.id} ${build.job}`,
    section: 'builds',
    body: html`<h1>Build <span class="mono">${build.id}</span> of <a href="/jobs/${encodeURIComponent(build.job)}">${build.job}</a>: ${stateLabel(build.state)}</h1>
${build.failure ? html`<p class="note" role="alert"><strong>Failure:</strong> ${build.failure}</p>` : ''}
${build.note ? html`<p class="note"><strong>Note:</strong> ${build.note}</p>` : ''}
<section aria-labelledby="facts-title"><h2 id="facts-title">Facts</h2><dl class="facts">
<dt>Pool</dt><dd><a href="/builds?pool=${encodeURIComponent(build.pool)}">${build.pool}</a></dd>
<dt>Platform</dt><dd>${build.platform}</dd><dt>Worker</dt><dd>${build.worker}</dd>
<dt>Client</dt><dd><a href="/builds?client=${encodeURIComponent(build.client)}">${build.client}</a></dd>
<dt>Submitted</dt><dd>${time(build.submittedAt)}</dd><dt>Started</dt><dd>${time(build.startedAt)}</dd><dt>Finished</dt><dd>${time(build.finishedAt)} (took ${formatDuration(build.durationMs)})</dd>
<dt>Steps</dt><dd>${build.stepsTotal} (${build.stepsCached} from cache)</dd><dt>Attempts</dt><dd>${build.attempts}</dd>
<dt>Final snapshot</dt><dd class="mono hash">${build.snapshotId ?? 'none'}</dd>
${build.contextDigest ? html`<dt>Context</dt><dd class="mono hash">${build.contextDigest}</dd>` : ''}
<dt>Cache hint</dt><dd class="mono hash">${build.cacheHint}</dd>
${build.trace ? html`<dt>Trace</dt><dd class="mono hash" title="grep the services' logs for it">${build.trace}</dd>` : ''}
${build.tags.length ? html`<dt>Tags</dt><dd>${build.tags.map((t) => html`<a href="/builds?tag=${encodeURIComponent(t)}">${t}</a> `)}</dd>` : ''}
<dt>Compare</dt><dd>${previous ? html`<a href="/compare?a=${previous}&amp;b=${build.id}">with the previous build of this job</a>` : html`<span class="muted">first build of this job</span>`}</dd>
</dl></section>
<section aria-labelledby="repro-title"><h2 id="repro-title">Reproduce</h2>
<p>Fetch the spec, then build it locally (from the build's context directory) or submit it to the cluster:</p>
<pre>${repro.fetch}\n${repro.local}</pre><pre>${repro.submit}</pre></section>
<section aria-labelledby="steps-title"><h2 id="steps-title">Steps</h2>${
      build.steps.length
        ? html`<div class="scroll"><table><thead><tr><th scope="col">#</th><th scope="col">Op</th><th scope="col" class="wide">Stage</th><th scope="col">Step ID</th><th scope="col">Cache</th><th scope="col">Took</th></tr></thead><tbody>${build.steps.map(
            (s) =>
              html`<tr${s.cached ? html` class="changed"` : ''}><td>${s.position + 1}</td><td class="mono">${s.op}</td><td class="wide">${s.stage || 'main'}</td><td class="mono hash" title="${s.stepId}">${s.stepId.slice(0, 12)}</td><td>${s.cached ? html`<span class="hit">cache hit</span>` : 'built'}</td><td>${formatDuration(s.ms)}</td></tr>`,
          )}</tbody></table></div>`
        : html`<p class="muted">No steps recorded.</p>`
    }</section>
<section aria-labelledby="artifacts-title"><h2 id="artifacts-title">Artifacts</h2>${
      build.artifacts.length
        ? html`<div class="scroll"><table><thead><tr><th scope="col">File</th><th scope="col">Size</th><th scope="col">SHA-256</th></tr></thead><tbody>${build.artifacts.map(
            (a) =>
              html`<tr><td class="mono"><a href="/api/v1/builds/${build.id}/artifacts/${a.path.split('/').map(encodeURIComponent).join('/')}" download>${a.path}</a></td><td>${formatBytes(a.size)}</td><td class="mono hash" data-sha256="${a.sha256}">${a.sha256}</td></tr>`,
          )}</tbody></table></div>`
        : html`<p class="muted">No artifacts.</p>`
    }</section>
<section aria-labelledby="log-title"><h2 id="log-title">Log</h2>${log ? html`${logTools({ times: build.logIndex !== null })}${log}` : html`<p class="muted">No log was kept for this build.</p>`}
${build.logSha256 ? html`<p><a href="/builds/${build.id}/log.txt" download="${build.id}.log">Download the raw log</a></p>` : ''}</section>
<section aria-labelledby="spec-title"><h2 id="spec-title">Spec</h2><pre>${build.spec}</pre><p><a href="/builds/${build.id}/spec" download="${specFileName(build.job)}">Download the spec</a></p></section>`,
  });
}

export function liveBuildPage(id: string, live: LiveJob | undefined): Html {
  const state = live?.state ?? 'running';
  return page({
    title: `${id}${live ? ` ${live.name}` : ''}`,
    section: 'builds',
    body: html`<h1>Build <span class="mono">${id}</span>${live ? html` of ${live.name}` : ''}: <span id="live-state" class="state ${state}" aria-live="polite">${state}</span></h1>
${
  live
    ? html`<dl class="facts"><dt>Pool</dt><dd>${live.pool}</dd><dt>Client</dt><dd>${live.client}</dd><dt>Worker</dt><dd>${live.worker ?? 'not yet assigned'}</dd><dt>Since</dt><dd>${time(live.since)}</dd></dl>`
    : ''
}
<p class="muted">This build has no stored result yet; its log follows below as it is written, and this page shows the result once it is stored.</p>
<section aria-labelledby="log-title" data-live-log="${id}"><h2 id="log-title">Log</h2>${logTools({ live: true })}<div class="log" id="log" aria-live="off"></div></section>`,
  });
}
