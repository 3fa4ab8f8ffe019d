/**
 * infra/k8s rendered with kubectl kustomize and checked without a Kubernetes API server
 * (none can run here): every object of the dev and prod overlays against the Kubernetes
 * OpenAPI schemas and our own rules (tools/k8s-check.ts), its alerts against the compose
 * stack's. Then copies of the prod overlay that break a schema, a selector, a seed, a
 * probe, a grace period, an alert (or let it drift from compose's) or an image pin must
 * fail, each problem naming its object and field.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportedMetrics, type ExportedMetrics } from '../../tools/exported-metrics.js';
import { checkManifests, composeAlerts, KUBERNETES_ONLY_ALERTS, renderOverlay, type AlertRule, type K8sObject } from '../../tools/k8s-check.js';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;

let work: string;
let metrics: ExportedMetrics;
let compose: AlertRule[];
let dev: K8sObject[];
let prod: K8sObject[];

const named = (objects: K8sObject[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);

/** The secrets an overlay needs, as an operator makes them (make-secrets.mjs). */
async function makeSecrets(overlay: string, ...args: string[]): Promise<void> {
  await run(process.execPath, [join(ROOT, 'infra/k8s/make-secrets.mjs'), overlay, ...args], { cwd: ROOT });
}

/** A copy of the prod overlay with `patches` (kustomize JSON patches by target) applied. */
async function brokenProd(name: string, patches: string): Promise<string[]> {
  const dir = join(work, 'k8s/overlays', name);
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, 'kustomization.yaml'),
    `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../prod\npatches:\n${patches}`,
  );
  return checkManifests(await renderOverlay(dir), { requireDigests: true, metrics, composeAlerts: compose });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cairn-k8s-'));
  // A copy: the secrets written here are the test's, not those of a checkout's overlays.
  await cp(join(ROOT, 'infra/k8s'), join(work, 'k8s'), { recursive: true, filter: (src) => !/\/overlays\/[^/]+\/secrets(\/|$)/.test(src) });
  await writeFile(join(work, 'db-url'), 'postgres://cairn:pw@db.example:5432/cairn\n');
  await makeSecrets(join(work, 'k8s/overlays/dev'), '--workers', 'cairn-worker-linux-x86-64=1', '--postgres-in-cluster', '--client', 'alice');
  await makeSecrets(
    join(work, 'k8s/overlays/prod'),
    '--workers',
    'cairn-worker-linux-x86-64=4',
    '--workers',
    'cairn-worker-linux-arm64=2',
    '--database-url-file',
    join(work, 'db-url'),
  );
  metrics = await exportedMetrics(ROOT);
  compose = await composeAlerts(ROOT);
  [dev, prod] = await Promise.all([renderOverlay(join(work, 'k8s/overlays/dev')), renderOverlay(join(work, 'k8s/overlays/prod'))]);
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the dev and prod overlays', () => {
  it('dev: every object is valid and passes our checks', () => {
    expect(checkManifests(dev, { requireDigests: false, metrics, composeAlerts: compose })).toEqual([]);
    expect(named(dev, 'StatefulSet', 'cairn-postgres')).toBeDefined();
    expect(named(dev, 'StatefulSet', 'cairn-worker-linux-x86-64')?.spec.replicas).toBe(1);
  });

  it('prod: every object is valid, every image pinned by digest, PostgreSQL outside', () => {
    expect(checkManifests(prod, { requireDigests: true, metrics, composeAlerts: compose })).toEqual([]);
    expect(prod.filter((o) => o.metadata.name.includes('postgres'))).toEqual([]);
  });

  it('the check runs as the README runs it (node tools/k8s-check.ts OVERLAY), exiting 0 with no problem', async () => {
    const { stderr } = await run(process.execPath, [join(ROOT, 'tools/k8s-check.ts'), join(work, 'k8s/overlays/prod'), '--digests'], { cwd: ROOT });
    expect(stderr).toMatch(/overlays\/prod: \d+ objects, 0 problem\(s\)\n$/);
  });

  it('holds what the issue lists, in both', () => {
    for (const objects of [dev, prod]) {
      const nats = named(objects, 'StatefulSet', 'cairn-nats')!;
      expect(nats.spec.replicas).toBe(3);
      expect(nats.spec.volumeClaimTemplates.map((t: K8sObject) => t.metadata.name)).toEqual(['jetstream']);
      expect(named(objects, 'Deployment', 'cairn-scheduler')?.spec.replicas).toBe(2);
      expect(named(objects, 'HorizontalPodAutoscaler', 'cairn-spec-compiler')?.spec.scaleTargetRef.name).toBe('cairn-spec-compiler');
      for (const [kind, name] of [
        ['Deployment', 'cairn-results-store'],
        ['Service', 'cairn-results-store'],
        ['Ingress', 'cairn-results-store'],
        ['Deployment', 'cairn-base-image-builder'],
        ['ServiceMonitor', 'cairn'],
        ['PrometheusRule', 'cairn'],
        ['PodDisruptionBudget', 'cairn-nats'],
        ['NetworkPolicy', 'cairn-default-deny-ingress'],
        ['ConfigMap', 'cairn-config'],
      ])
        expect(named(objects, kind!, name!), `${kind}/${name}`).toBeDefined();
      for (const pool of objects.filter((o) => o.kind === 'StatefulSet' && o.metadata.name.startsWith('cairn-worker-'))) {
        const pod = pool.spec.template.spec;
        expect(pod.containers[0].securityContext.privileged).toBe(true);
        expect(pod.nodeSelector['cairn.dev/worker-pool'] ?? pod.nodeSelector['kubernetes.io/arch']).toBeDefined();
        expect(pool.spec.volumeClaimTemplates[0].metadata.name).toBe('store');
      }
    }
    expect(
      prod
        .filter((o) => o.kind === 'StatefulSet' && o.metadata.name.startsWith('cairn-worker-'))
        .map((o) => o.spec.template.spec.nodeSelector['kubernetes.io/arch'])
        .sort(),
    ).toEqual(['amd64', 'arm64']);
  });

  it("holds the compose stack's alerts, by name, expression, duration and severity, and only the listed ones besides", () => {
    for (const objects of [dev, prod]) {
      const rules = objects
        .filter((o) => o.kind === 'PrometheusRule')
        .flatMap((o) => o.spec.groups.flatMap((g: { rules: AlertRule[] }) => g.rules))
        .map((r: AlertRule) => ({ alert: r.alert, expr: r.expr, for: r.for, severity: r.labels?.severity }));
      const fromCompose = compose.map((r) => ({ alert: r.alert, expr: r.expr, for: r.for, severity: r.labels?.severity }));
      expect(rules.filter((r) => KUBERNETES_ONLY_ALERTS[r.alert] === undefined).sort((a, b) => a.alert.localeCompare(b.alert))).toEqual(
        fromCompose.sort((a, b) => a.alert.localeCompare(b.alert)),
      );
      expect(rules.find((r) => r.alert === 'CairnQueueWaiting')?.expr).toBe('max by (pool) (cairn_scheduler_oldest_queued_seconds) > 600');
    }
  });
});

describe('a broken copy of the prod overlay fails, naming the object and the field', () => {
  it('a value of the wrong type (the schema)', async () => {
    const problems = await brokenProd(
      'bad-schema',
      `  - target: { kind: StatefulSet, name: cairn-nats }\n    patch: |\n      - { op: replace, path: /spec/replicas, value: "three" }\n`,
    );
    expect(problems).toContain('StatefulSet/cairn-nats: /spec/replicas must be integer');
  });

  it('a selector that no longer matches its pods', async () => {
    const problems = await brokenProd(
      'bad-selector',
      `  - target: { kind: Deployment, name: cairn-scheduler }\n    patch: |\n      - { op: replace, path: /spec/template/metadata/labels/app.kubernetes.io~1name, value: sched }\n`,
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^Deployment\/cairn-scheduler: \/spec\/selector\/matchLabels \{"app.kubernetes.io\/name":"scheduler"\} does not match the pod template's labels/,
        ),
        'Service/cairn-scheduler: /spec/selector {"app.kubernetes.io/name":"scheduler"} selects no pod of any Deployment or StatefulSet',
        'PodDisruptionBudget/cairn-scheduler: /spec/selector/matchLabels {"app.kubernetes.io/name":"scheduler"} selects no pod of any Deployment or StatefulSet',
      ]),
    );
  });

  it('more workers than seeds, a probe on a port that is not there, a grace period shorter than the drain', async () => {
    const problems = await brokenProd(
      'bad-pod',
      `  - target: { kind: StatefulSet, name: cairn-worker-linux-x86-64 }\n    patch: |\n      - { op: replace, path: /spec/replicas, value: 5 }\n      - { op: replace, path: /spec/template/spec/terminationGracePeriodSeconds, value: 600 }\n` +
        `  - target: { kind: Deployment, name: cairn-spec-compiler }\n    patch: |\n      - { op: replace, path: /spec/template/spec/containers/0/livenessProbe/httpGet/port, value: metrics }\n      - { op: remove, path: /spec/template/spec/containers/0/readinessProbe }\n`,
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^StatefulSet\/cairn-worker-linux-x86-64: container worker: CAIRN_NATS_NKEY_SEED_FILE: Secret cairn-worker-seeds-\w+ has no key cairn-worker-linux-x86-64-4\.nk$/,
        ),
        expect.stringMatching(
          /^StatefulSet\/cairn-worker-linux-x86-64: \/spec\/template\/spec\/terminationGracePeriodSeconds 600 leaves under 30 s beyond CAIRN_DRAIN_TIMEOUT_MS 1800000/,
        ),
        'Deployment/cairn-spec-compiler: container spec-compiler: livenessProbe port "metrics" is not one of the container\'s ports',
        'Deployment/cairn-spec-compiler: container spec-compiler: no readinessProbe',
      ]),
    );
    expect(problems.filter((p) => p.includes('cairn-worker-linux-x86-64-3.nk'))).toEqual([]);
  });

  it('an image by tag, a missing ConfigMap, an alert on a metric nobody exports', async () => {
    const problems = await brokenProd(
      'bad-refs',
      `  - target: { kind: Deployment, name: cairn-results-store }\n    patch: |\n      - { op: replace, path: /spec/template/spec/containers/0/image, value: "cairn/results-store:latest" }\n      - { op: replace, path: /spec/template/spec/containers/0/envFrom/0/configMapRef/name, value: cairn-settings }\n` +
        `  - target: { kind: PrometheusRule, name: cairn }\n    patch: |\n      - { op: replace, path: /spec/groups/0/rules/0/expr, value: "cairn_scheduler_queue_age_seconds > 600" }\n      - { op: replace, path: /spec/groups/0/rules/1/expr, value: 'cairn_scheduler_workers{online="true"} == 0' }\n`,
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'Deployment/cairn-results-store: container results-store: image cairn/results-store:latest is not pinned by digest (@sha256:...)',
        'Deployment/cairn-results-store: container results-store: envFrom: no ConfigMap cairn-settings',
        'PrometheusRule/cairn: /spec/groups/cairn/CairnQueueWaiting/expr: cairn_scheduler_queue_age_seconds is not a metric any service exports',
        'PrometheusRule/cairn: /spec/groups/cairn/CairnPoolWithoutWorkers/expr: cairn_scheduler_workers has no label online',
      ]),
    );
  });

  it("an alert that drifts from the compose stack's: another expression, duration, severity or summary, one missing, one only here", async () => {
    const problems = await brokenProd(
      'alert-drift',
      `  - target: { kind: PrometheusRule, name: cairn }\n    patch: |\n` +
        `      - { op: replace, path: /spec/groups/0/rules/0/expr, value: "min_over_time(cairn_scheduler_queue_length[15m]) > 0" }\n` +
        `      - { op: replace, path: /spec/groups/0/rules/0/for, value: 15m }\n` +
        `      - { op: replace, path: /spec/groups/0/rules/1/alert, value: CairnNoWorkersInPool }\n` +
        `      - { op: replace, path: /spec/groups/0/rules/3/labels/severity, value: critical }\n` +
        // compose's `instance` is a pod's address under Kubernetes: the worker is named by `pod`.
        `      - { op: replace, path: /spec/groups/0/rules/3/annotations/summary, value: "Worker {{ $labels.instance }} is low on store space or refuses jobs" }\n`,
    );
    expect(problems).toEqual([
      'PrometheusRule/cairn: /spec/groups/cairn/CairnQueueWaiting/expr: "min_over_time(cairn_scheduler_queue_length[15m]) > 0" is not the compose stack\'s "max by (pool) (cairn_scheduler_oldest_queued_seconds) > 600" (infra/compose/prometheus/alerts.yml)',
      'PrometheusRule/cairn: /spec/groups/cairn/CairnQueueWaiting/for: "15m" is not the compose stack\'s "5m" (infra/compose/prometheus/alerts.yml)',
      'PrometheusRule/cairn: no alert CairnPoolWithoutWorkers, which the compose stack has (infra/compose/prometheus/alerts.yml)',
      'PrometheusRule/cairn: /spec/groups/cairn/CairnWorkerDiskLow/labels/severity: "critical" is not the compose stack\'s "warning" (infra/compose/prometheus/alerts.yml)',
      'PrometheusRule/cairn: /spec/groups/cairn/CairnWorkerDiskLow/annotations/summary: "Worker {{ $labels.instance }} is low on store space or refuses jobs" is not the compose stack\'s "Worker {{ $labels.pod }} is low on store space or refuses jobs" (infra/compose/prometheus/alerts.yml)',
      "PrometheusRule/cairn: /spec/groups/cairn/CairnNoWorkersInPool: not one of the compose stack's alerts (infra/compose/prometheus/alerts.yml), nor one of KUBERNETES_ONLY_ALERTS (tools/k8s-check.ts)",
    ]);
    // An alert added to compose alone fails too.
    const added = [...compose, { alert: 'CairnNew', expr: 'cairn_results_backlog > 5', for: '1m', labels: { severity: 'warning' } }];
    expect(checkManifests(prod, { requireDigests: true, metrics, composeAlerts: added })).toEqual([
      'PrometheusRule/cairn: no alert CairnNew, which the compose stack has (infra/compose/prometheus/alerts.yml)',
    ]);
  });

  it('knows the metrics the services really export, with their labels', () => {
    for (const name of ['cairn_scheduler_queue_length', 'cairn_worker_refusing', 'cairn_results_backlog', 'cairn_spec_compiler_compile_seconds_bucket'])
      expect(metrics.has(name), name).toBe(true);
    expect([...metrics.get('cairn_scheduler_workers')!].sort()).toEqual(['connected', 'pool']);
    expect([...metrics.get('cairn_spec_compiler_compile_seconds_bucket')!].sort()).toEqual(['le', 'request']);
    expect(metrics.has('cairn_scheduler_queue_age_seconds')).toBe(false);
  });
});
