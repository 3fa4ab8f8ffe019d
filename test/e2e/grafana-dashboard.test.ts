/**
 * infra/grafana/cairn.json, checked without a Grafana (tools/grafana-check.ts): every
 * query names metrics and labels the services really export, read from their sources,
 * and every service has its panels. A copy with a renamed metric, a wrong label, a
 * shared panel ID or a stray data source fails, naming the panel.
 */
import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportedMetrics, promqlProblems, type ExportedMetrics } from '../../tools/exported-metrics.js';
import { dashboardProblems } from '../../tools/grafana-check.js';

const ROOT = new URL('../../', import.meta.url).pathname;
let metrics: ExportedMetrics;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the dashboard's JSON
let dashboard: any;

beforeAll(async () => {
  metrics = await exportedMetrics(ROOT);
  dashboard = JSON.parse(await readFile(`${ROOT}infra/grafana/cairn.json`, 'utf8'));
});

describe('the Grafana dashboard', () => {
  it('queries only metrics and labels the services export, on non-overlapping panels', () => {
    expect(dashboardProblems(dashboard, metrics)).toEqual([]);
  });

  it('has panels for every service', () => {
    const exprs = dashboard.panels.flatMap((p: { targets?: { expr: string }[] }) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    for (const prefix of ['cairn_scheduler_', 'cairn_worker_', 'cairn_spec_compiler_', 'cairn_results_', 'cairn_base_image_']) expect(exprs).toContain(prefix);
  });

  it('shows the queue age the compose alert rules watch', async () => {
    const exprs = dashboard.panels.flatMap((p: { targets?: { expr: string }[] }) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    const alerts = await readFile(`${ROOT}infra/compose/prometheus/alerts.yml`, 'utf8');
    const queueAge = /^\s*expr: (.*cairn_scheduler_oldest_queued_seconds.*)$/m.exec(alerts)?.[1];
    expect(queueAge, 'the compose queue-age alert').toBeDefined();
    expect(promqlProblems(queueAge!, metrics)).toEqual([]);
    expect(exprs).toContain('cairn_scheduler_oldest_queued_seconds');
  });

  it('a broken copy fails, naming the panel', () => {
    const copy = structuredClone(dashboard);
    const queue = copy.panels.find((p: { title: string }) => p.title === 'Queued jobs per pool');
    queue.targets[0].expr = 'sum by (pool) (cairn_scheduler_queue_size)';
    const workers = copy.panels.find((p: { title: string }) => p.title === 'Connected workers per pool');
    workers.targets[0].expr = 'sum by (pool) (cairn_scheduler_workers{online="true"})';
    const stored = copy.panels.find((p: { title: string }) => p.title === 'Results stored per second');
    stored.targets[0].expr = 'sum by (client) (rate(cairn_results_ingested_total[5m]))';
    copy.panels[3].id = copy.panels[2].id;
    copy.panels[4].datasource = { type: 'prometheus', uid: 'prod-prometheus' };
    const problems = dashboardProblems(copy, metrics);
    expect(problems).toEqual(
      expect.arrayContaining([
        `panel ${queue.id} "Queued jobs per pool" query A: cairn_scheduler_queue_size is not a metric any service exports`,
        `panel ${workers.id} "Connected workers per pool" query A: cairn_scheduler_workers has no label online`,
        `panel ${stored.id} "Results stored per second" query A: no metric of the expression has the label client it groups by`,
        `panel ${copy.panels[3].id} "${copy.panels[3].title}": its id is missing or not unique`,
        `panel ${copy.panels[4].id} "${copy.panels[4].title}": datasource "prod-prometheus" is not a variable of the dashboard`,
      ]),
    );
  });
});
