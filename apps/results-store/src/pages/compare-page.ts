/** Two builds compared: spec diff, steps with changed IDs, timing differences. */
import type { Comparison } from '../queries/compare.js';
import { formatDuration, html, type Html } from '../view/html.js';
import { page, stateLabel } from '../view/layout.js';

const signed = (ms: number) => `${ms >= 0 ? '+' : '−'}${formatDuration(Math.abs(ms))}`;

export function comparePage(c: Comparison): Html {
  const { a, b } = c;
  return page({
    title: `Compare ${a.id} and ${b.id}`,
    section: 'builds',
    body: html`<h1>Compare builds</h1>
<div class="scroll"><table><thead><tr><th scope="col"></th><th scope="col">A</th><th scope="col">B</th></tr></thead><tbody>
<tr><th scope="row">Build</th><td class="mono"><a href="/builds/${a.id}">${a.id}</a></td><td class="mono"><a href="/builds/${b.id}">${b.id}</a></td></tr>
<tr><th scope="row">Job</th><td>${a.job}</td><td>${b.job}</td></tr>
<tr><th scope="row">Status</th><td>${stateLabel(a.state)}</td><td>${stateLabel(b.state)}</td></tr>
<tr><th scope="row">Pool / platform</th><td>${a.pool} / ${a.platform}</td><td>${b.pool} / ${b.platform}</td></tr>
<tr><th scope="row">Took</th><td>${formatDuration(a.durationMs)}</td><td>${formatDuration(b.durationMs)} (${signed(c.durationDeltaMs)})</td></tr>
<tr><th scope="row">Cached steps</th><td>${a.stepsCached}/${a.stepsTotal}</td><td>${b.stepsCached}/${b.stepsTotal}</td></tr>
</tbody></table></div>
<section aria-labelledby="steps-title"><h2 id="steps-title">Steps</h2>
<p>${c.firstChange === undefined ? 'Every step has the same ID in both builds.' : html`${c.steps.filter((s) => s.changed).length} step(s) differ; the first is step ${c.firstChange + 1}, and every later step ID follows from it.`}</p>
<div class="scroll"><table id="steps"><thead><tr><th scope="col">#</th><th scope="col">Op</th><th scope="col">Step ID in A</th><th scope="col">Step ID in B</th><th scope="col">Time A</th><th scope="col">Time B</th><th scope="col">Difference</th></tr></thead><tbody>${c.steps.map(
      (s, i) =>
        html`<tr class="${[s.changed && 'changed', i === c.firstChange && 'first-change'].filter(Boolean).join(' ')}" data-changed="${s.changed ? 'yes' : 'no'}"><td>${i + 1}</td><td class="mono">${s.op}${s.opBefore !== undefined ? html`<br><span class="muted">was ${s.opBefore}</span>` : ''}${s.changed ? html` <strong>(changed)</strong>` : ''}</td><td class="mono hash">${s.a ? s.a.stepId.slice(0, 12) : '—'}${s.a?.cached ? ' (cached)' : ''}</td><td class="mono hash">${s.b ? s.b.stepId.slice(0, 12) : '—'}${s.b?.cached ? ' (cached)' : ''}</td><td>${s.a ? formatDuration(s.a.ms) : ''}</td><td>${s.b ? formatDuration(s.b.ms) : ''}</td><td>${s.deltaMs === undefined ? '' : signed(s.deltaMs)}</td></tr>`,
    )}</tbody></table></div></section>
<section aria-labelledby="spec-title"><h2 id="spec-title">Spec</h2>${
      c.specChanged
        ? html`<pre class="diff">${c.specDiff.map((d) =>
            d.kind === 'same' ? html`  ${d.a}\n` : d.kind === 'removed' ? html`<span class="del">- ${d.a}</span>\n` : html`<span class="add">+ ${d.b}</span>\n`,
          )}</pre>`
        : html`<p>The specs are identical.</p>`
    }</section>`,
  });
}
