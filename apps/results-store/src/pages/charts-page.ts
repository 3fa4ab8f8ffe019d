/**
 * The charts page: one server-rendered SVG per chart, no script. Every number drawn is
 * also in a data attribute (each series' points as `data-points="t:v t:v"`, its count
 * over the range as `data-count`, and for rates the part counted as `data-part`), so
 * a script or a test reads the figures without parsing the drawing.
 */
import { RANGES, type Chart, type Charts, type Range } from '../rollups/chart-data.js';
import { formatDuration, html, trusted, escapeXml, type Html } from '../view/html.js';
import { page } from '../view/layout.js';

const W = 640;
const H = 180;
const PAD = { left: 56, right: 8, top: 10, bottom: 22 };
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

function label(value: number, unit: Chart['unit']): string {
  return unit === 'ms' ? formatDuration(value) : unit === '%' ? `${Math.round(value)}%` : String(Math.round(value * 10) / 10);
}

function clock(ms: number, range: Range): string {
  const iso = new Date(ms).toISOString();
  return range === '1h' || range === '24h' ? `${iso.slice(11, 16)} UTC` : iso.slice(0, 10);
}

export function chartSvg(chart: Chart, data: Pick<Charts, 'from' | 'to' | 'range'>): Html {
  const max = chart.unit === '%' ? 100 : Math.max(1, ...chart.series.flatMap((s) => s.points.map(([, v]) => v)));
  const x = (t: number) => PAD.left + ((t - data.from) / Math.max(1, data.to - data.from)) * (W - PAD.left - PAD.right);
  const y = (v: number) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom);
  const lines = chart.series.map((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const points = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    const part = s.part === undefined || chart.unit !== '%' ? '' : ` data-part="${s.part}"`;
    return (
      `<g data-series="${escapeXml(s.name)}" data-count="${s.count}"${part} data-points="${s.points.map(([t, v]) => `${t}:${v}`).join(' ')}"><title>${escapeXml(s.name)}</title>` +
      (s.points.length === 1
        ? `<circle cx="${x(s.points[0]![0]).toFixed(1)}" cy="${y(s.points[0]![1]).toFixed(1)}" r="3" fill="${colour}"/>`
        : `<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${points}"/>`) +
      '</g>'
    );
  });
  const axes =
    `<line x1="${PAD.left}" y1="${H - PAD.bottom}" x2="${W - PAD.right}" y2="${H - PAD.bottom}" stroke="currentColor" stroke-opacity=".4"/>` +
    `<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${H - PAD.bottom}" stroke="currentColor" stroke-opacity=".4"/>` +
    `<text x="${PAD.left - 4}" y="${PAD.top + 8}" text-anchor="end" font-size="11" fill="currentColor">${escapeXml(label(max, chart.unit))}</text>` +
    `<text x="${PAD.left - 4}" y="${H - PAD.bottom}" text-anchor="end" font-size="11" fill="currentColor">0</text>` +
    `<text x="${PAD.left}" y="${H - 6}" font-size="11" fill="currentColor">${clock(data.from, data.range)}</text>` +
    `<text x="${W - PAD.right}" y="${H - 6}" text-anchor="end" font-size="11" fill="currentColor">${clock(data.to, data.range)}</text>`;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${chart.id}-title" data-chart="${chart.id}" data-unit="${chart.unit}" data-from="${data.from}" data-to="${data.to}" data-max="${max}">${axes}${lines.join('')}</svg>`;
  const legend = chart.series.length
    ? html`<ul class="legend">${chart.series.map((s, i) => html`<li>${trusted(`<svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" fill="${COLOURS[i % COLOURS.length]!}"/></svg>`)} ${s.name}</li>`)}</ul>`
    : html`<p class="muted">No data in this range.</p>`;
  return html`<figure class="chart" id="chart-${chart.id}"><figcaption id="${chart.id}-title">${chart.title}</figcaption>${trusted(svg)}${legend}</figure>`;
}

export function chartsPage(data: Charts): Html {
  const query = (range: string) => `/charts?range=${range}${data.pool ? `&pool=${encodeURIComponent(data.pool)}` : ''}`;
  const body = html`<h1>Charts${data.pool ? html` of pool ${data.pool}` : ''}</h1>
<nav aria-label="Range"><ul class="ranges">${Object.keys(RANGES).map((r) => html`<li><a href="${query(r)}"${r === data.range ? html` aria-current="page"` : ''}>${r}</a></li>`)}</ul></nav>
<p class="muted">From the rollups kept per ${data.bucketMs === 60_000 ? 'minute' : 'hour'}; queues and workers are sampled once a minute.</p>
${data.charts.map((chart) => chartSvg(chart, data))}`;
  return page({ title: 'Charts', section: 'charts', body });
}
