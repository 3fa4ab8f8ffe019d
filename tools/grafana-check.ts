/**
 * Checks a Grafana dashboard (infra/grafana/cairn.json) without a Grafana: the fields
 * Grafana needs to import it, panels that neither share an ID nor overlap on the
 * 24-column grid, queries on the dashboard's own Prometheus data source variable, and
 * every query against the metrics and labels the services export (exported-metrics.ts).
 * Each problem names the panel.
 */
import { promqlProblems, type ExportedMetrics } from './exported-metrics.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- a dashboard is whatever JSON says; this checks it */
export function dashboardProblems(dashboard: any, metrics: ExportedMetrics): string[] {
  const problems: string[] = [];
  for (const field of ['uid', 'title', 'schemaVersion', 'panels'] as const) if (dashboard?.[field] === undefined) problems.push(`dashboard: no ${field}`);
  if (!Array.isArray(dashboard?.panels)) return problems;
  const variables = new Set<string>((dashboard.templating?.list ?? []).map((v: any) => v.name));
  const ids = new Set<number>();
  const cells = new Map<string, string>();
  for (const panel of dashboard.panels) {
    const at = `panel ${panel.id} "${panel.title}"`;
    if (!Number.isInteger(panel.id) || ids.has(panel.id)) problems.push(`${at}: its id is missing or not unique`);
    ids.add(panel.id);
    const { x, y, w, h } = panel.gridPos ?? {};
    if (![x, y, w, h].every(Number.isInteger) || x < 0 || w < 1 || x + w > 24 || h < 1) {
      problems.push(`${at}: gridPos ${JSON.stringify(panel.gridPos)} is not within the 24 columns`);
    } else {
      for (let row = y; row < y + h; row++) {
        for (let col = x; col < x + w; col++) {
          const other = cells.get(`${row},${col}`);
          if (other) {
            problems.push(`${at}: overlaps ${other}`);
            row = y + h;
            break;
          }
          cells.set(`${row},${col}`, at);
        }
      }
    }
    if (panel.type === 'row') continue;
    const source = panel.datasource?.uid;
    if (typeof source !== 'string' || !variables.has(source.replace(/^\$\{?|\}$/g, '')))
      problems.push(`${at}: datasource ${JSON.stringify(source)} is not a variable of the dashboard`);
    if (!Array.isArray(panel.targets) || panel.targets.length === 0) problems.push(`${at}: no queries`);
    for (const target of panel.targets ?? []) {
      if (typeof target.expr !== 'string' || target.expr.trim() === '') problems.push(`${at} query ${target.refId}: no expr`);
      else for (const p of promqlProblems(target.expr, metrics)) problems.push(`${at} query ${target.refId}: ${p}`);
    }
  }
  return problems;
}
