/**
 * A job's history as an inline SVG bar chart: one bar per build, oldest on the left,
 * height its duration, colour its outcome, with the build as a link and a tooltip.
 * No script and no library; the page stays small on a slow link.
 */
import { escapeHtml, formatDuration, isoTime } from '../view/html.js';

export interface ChartPoint {
  readonly id: string;
  readonly state: string;
  readonly durationMs: number;
  readonly finishedAt: number;
}

const W = 720;
const H = 160;
const PAD = 24;

export function historyChart(points: readonly ChartPoint[], title: string): string {
  const builds = [...points].sort((a, b) => a.finishedAt - b.finishedAt);
  const succeeded = builds.filter((b) => b.state === 'succeeded').length;
  const label = builds.length
    ? `${title}: ${builds.length} builds, ${Math.round((100 * succeeded) / builds.length)}% succeeded, longest ${formatDuration(Math.max(...builds.map((b) => b.durationMs)))}`
    : `${title}: no builds yet`;
  const max = Math.max(1, ...builds.map((b) => b.durationMs));
  const slot = builds.length ? (W - PAD) / builds.length : 0;
  const bar = Math.max(1, Math.min(24, slot - 2));
  const bars = builds
    .map((b, i) => {
      const h = Math.max(2, Math.round(((H - PAD) * b.durationMs) / max));
      const x = (PAD + i * slot).toFixed(1);
      const tip = `${b.id} ${b.state} in ${formatDuration(b.durationMs)}, ${isoTime(b.finishedAt)}`;
      return `<a href="/builds/${escapeHtml(b.id)}"><rect class="${escapeHtml(b.state)}" x="${x}" y="${H - PAD - h + 4}" width="${bar.toFixed(1)}" height="${h}"><title>${escapeHtml(tip)}</title></rect></a>`;
    })
    .join('');
  return (
    `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(label)}" preserveAspectRatio="none">` +
    `<title>${escapeHtml(label)}</title>` +
    `<line x1="${PAD}" y1="${H - PAD + 4}" x2="${W}" y2="${H - PAD + 4}" class="axis"/>` +
    `<text x="2" y="12" class="axis-label">${escapeHtml(formatDuration(max))}</text>` +
    bars +
    `</svg>`
  );
}
