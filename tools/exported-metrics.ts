/**
 * The Prometheus metrics the services export, read from their sources, and the check
 * that a PromQL expression (an alert rule in infra/k8s, a Grafana panel in
 * infra/grafana) names only those metrics and their labels: a renamed metric or label
 * then fails a test instead of leaving an empty panel or an alert that never fires.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Metric name -> its label names (a histogram's _bucket adds `le`). */
export type ExportedMetrics = ReadonlyMap<string, ReadonlySet<string>>;

/** Labels Prometheus adds to every scraped series (kubernetes_sd and the ServiceMonitor). */
const TARGET_LABELS = ['job', 'instance', 'namespace', 'pod', 'service', 'container', 'endpoint'];

async function sourceFiles(root: string): Promise<string[]> {
  const files: string[] = [];
  for (const top of ['apps', 'libs']) {
    for (const entry of await readdir(join(root, top), { recursive: true, withFileTypes: true })) {
      const path = join(entry.parentPath, entry.name);
      if (entry.isFile() && entry.name.endsWith('.ts') && path.includes('/src/') && !/\/(dist|node_modules)\//.test(path)) files.push(path);
    }
  }
  return files;
}

/**
 * Every `new Counter|Gauge|Histogram|Summary({ name: 'cairn_...', ..., labelNames: [...] })`
 * under apps/ and libs/, with a histogram's _bucket, _sum and _count series and a
 * summary's _sum and _count.
 */
export async function exportedMetrics(root: string): Promise<ExportedMetrics> {
  const metrics = new Map<string, Set<string>>();
  const declaration =
    /new (Counter|Gauge|Histogram|Summary)(?:<[^>]*>)?\(\s*\{\s*name:\s*'(cairn_[a-z0-9_]+)'([\s\S]*?)(?=new (?:Counter|Gauge|Histogram|Summary)\b|$)/g;
  for (const file of await sourceFiles(root)) {
    for (const [, type, name, rest] of (await readFile(file, 'utf8')).matchAll(declaration)) {
      // The labelNames of this declaration: before its object closes (`})`).
      const own = rest!.slice(0, rest!.search(/\}\s*\)/) + 1 || undefined);
      const labels = new Set([...(/labelNames:\s*\[([^\]]*)\]/.exec(own)?.[1]?.matchAll(/'([a-zA-Z_][a-zA-Z0-9_]*)'/g) ?? [])].map((m) => m[1]!));
      metrics.set(name!, labels);
      const series = type === 'Histogram' ? ['_bucket', '_sum', '_count'] : type === 'Summary' ? ['_sum', '_count'] : [];
      for (const suffix of series) metrics.set(name! + suffix, suffix === '_bucket' ? new Set([...labels, 'le']) : labels);
    }
  }
  return metrics;
}

/**
 * What in `expr` is not exported: a `cairn_*` metric no service declares, a label in its
 * `{...}` selector it does not have, or a label in `by (...)`/`without (...)` that none
 * of the expression's metrics has.
 */
export function promqlProblems(expr: string, metrics: ExportedMetrics): string[] {
  const problems: string[] = [];
  const used = [...expr.matchAll(/\b(cairn_[a-z0-9_]+)(\{[^}]*\})?/g)];
  const labelsOfUsed = new Set<string>(TARGET_LABELS);
  for (const [, name, selector] of used) {
    const labels = metrics.get(name!);
    if (!labels) {
      problems.push(`${name} is not a metric any service exports`);
      continue;
    }
    labels.forEach((l) => labelsOfUsed.add(l));
    for (const [, label] of selector?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g) ?? []) {
      if (!labels.has(label!) && !TARGET_LABELS.includes(label!)) problems.push(`${name} has no label ${label}`);
    }
  }
  for (const [, list] of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const label of list!
      .split(',')
      .map((l) => l.trim())
      .filter(Boolean)) {
      if (!labelsOfUsed.has(label)) problems.push(`no metric of the expression has the label ${label} it groups by`);
    }
  }
  return problems;
}
