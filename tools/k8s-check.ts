/**
 * Checks a rendered kustomize overlay (infra/k8s) without a Kubernetes API server: each
 * object against the Kubernetes OpenAPI schemas (kubernetes-models), the Prometheus
 * Operator's two kinds against the parts of their schema we use, and what the schemas
 * cannot see: images pinned by digest, probes and resources on every container, probe
 * and Service ports that exist, selectors that select something, every Secret and
 * ConfigMap (and every key of them) a pod uses, a worker's grace period longer than its
 * drain, and alert rules that name metrics (and labels) the services export and that are the
 * compose stack's alerts (infra/compose/prometheus/alerts.yml), so the two cannot drift. Each
 * problem names the object (Kind/name) and the field.
 *
 *   node tools/k8s-check.ts infra/k8s/overlays/prod [--digests]
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2';
import * as networkingV1 from 'kubernetes-models/networking.k8s.io/v1';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as coreV1 from 'kubernetes-models/v1';
import { exportedMetrics, promqlProblems, type ExportedMetrics } from './exported-metrics.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are whatever YAML says; the schemas check them first */
export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: any;
};

const KUBECTL = process.env.KUBECTL ?? 'kubectl';

/** `kubectl kustomize DIR`, parsed. */
export async function renderOverlay(dir: string): Promise<K8sObject[]> {
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(KUBECTL, ['kustomize', dir], { maxBuffer: 64 * 1024 * 1024 }));
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT') throw new Error(`${KUBECTL} not found: tools/setup.sh installs kubectl (KUBECTL names another)`, { cause: e });
    throw new Error(`kubectl kustomize ${dir} failed: ${(err.stderr ?? err.message).trim()}`, { cause: e });
  }
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

type Model = new (data: any) => { validate(): void };
const MODELS: Record<string, Model> = {
  'v1/Namespace': coreV1.Namespace,
  'v1/ConfigMap': coreV1.ConfigMap,
  'v1/Secret': coreV1.Secret,
  'v1/Service': coreV1.Service,
  'v1/PersistentVolumeClaim': coreV1.PersistentVolumeClaim,
  'v1/ServiceAccount': coreV1.ServiceAccount,
  'apps/v1/Deployment': appsV1.Deployment,
  'apps/v1/StatefulSet': appsV1.StatefulSet,
  'autoscaling/v2/HorizontalPodAutoscaler': autoscalingV2.HorizontalPodAutoscaler,
  'networking.k8s.io/v1/Ingress': networkingV1.Ingress,
  'networking.k8s.io/v1/NetworkPolicy': networkingV1.NetworkPolicy,
  'policy/v1/PodDisruptionBudget': policyV1.PodDisruptionBudget,
};

const idOf = (o: K8sObject) => `${o.kind}/${o.metadata?.name ?? '(no name)'}`;
const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;

/** The Prometheus Operator's ServiceMonitor and PrometheusRule: the fields we use, with their types. */
function checkMonitoringKind(o: K8sObject): string[] {
  const problems: string[] = [];
  const need = (ok: boolean, path: string, what: string) => {
    if (!ok) problems.push(`${idOf(o)}: ${path} ${what}`);
  };
  const spec = o.spec;
  need(typeof spec === 'object' && spec !== null, '/spec', 'must be an object');
  if (problems.length) return problems;
  if (o.kind === 'ServiceMonitor') {
    need(typeof spec.selector === 'object' && spec.selector !== null, '/spec/selector', 'must be an object');
    need(Array.isArray(spec.endpoints) && spec.endpoints.length > 0, '/spec/endpoints', 'must be a non-empty array');
    (Array.isArray(spec.endpoints) ? spec.endpoints : []).forEach((e: any, i: number) => {
      need(typeof e.port === 'string' || e.targetPort !== undefined, `/spec/endpoints/${i}`, 'must name a port or targetPort');
      if (e.path !== undefined) need(typeof e.path === 'string' && e.path.startsWith('/'), `/spec/endpoints/${i}/path`, 'must be a path');
      if (e.interval !== undefined) need(DURATION.test(String(e.interval)), `/spec/endpoints/${i}/interval`, 'must be a duration such as 30s');
    });
  } else {
    need(Array.isArray(spec.groups), '/spec/groups', 'must be an array');
    (Array.isArray(spec.groups) ? spec.groups : []).forEach((g: any, i: number) => {
      need(typeof g.name === 'string' && g.name !== '', `/spec/groups/${i}/name`, 'must be a non-empty string');
      need(Array.isArray(g.rules), `/spec/groups/${i}/rules`, 'must be an array');
      (Array.isArray(g.rules) ? g.rules : []).forEach((r: any, j: number) => {
        const at = `/spec/groups/${i}/rules/${j}`;
        need((typeof r.alert === 'string') !== (typeof r.record === 'string'), at, 'must have one of alert and record');
        need(typeof r.expr === 'string' && r.expr.trim() !== '', `${at}/expr`, 'must be a non-empty string');
        if (r.for !== undefined) need(DURATION.test(String(r.for)), `${at}/for`, 'must be a duration such as 5m');
      });
    });
  }
  return problems;
}

/**
 * kustomize folds a Secret's long base64 values over lines; the API server's decoder
 * skips the line breaks, the schema's "byte" format does not.
 */
function secretDataUnfolded(o: K8sObject): K8sObject {
  if (o.kind !== 'Secret' || typeof o.data !== 'object' || o.data === null) return o;
  return { ...o, data: Object.fromEntries(Object.entries(o.data).map(([k, v]) => [k, typeof v === 'string' ? v.replace(/\s+/g, '') : v])) };
}

export function schemaProblems(o: K8sObject): string[] {
  if (o.apiVersion === 'monitoring.coreos.com/v1' && (o.kind === 'ServiceMonitor' || o.kind === 'PrometheusRule')) return checkMonitoringKind(o);
  const model = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!model) return [`${idOf(o)}: no schema for ${o.apiVersion} ${o.kind} (add it to tools/k8s-check.ts)`];
  try {
    new model(secretDataUnfolded(o)).validate();
    return [];
  } catch (e) {
    const errors = (e as { errors?: { instancePath: string; message?: string }[] }).errors;
    if (!errors) return [`${idOf(o)}: ${(e as Error).message}`];
    return errors.map((err) => `${idOf(o)}: ${err.instancePath || '/'} ${err.message ?? 'is invalid'}`);
  }
}

/** The pod template of a workload, or undefined for other kinds. */
function podSpecOf(o: K8sObject): any {
  return o.kind === 'Deployment' || o.kind === 'StatefulSet' ? o.spec?.template?.spec : undefined;
}

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  selector !== undefined && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

export interface CheckOptions {
  /** Every image must be pinned by digest (prod). Otherwise each needs a tag or a digest. */
  readonly requireDigests: boolean;
  /** What the services export (exportedMetrics); alert rules may name only these metrics and labels. */
  readonly metrics: ExportedMetrics;
  /**
   * The compose stack's alerts (composeAlerts): the PrometheusRule must have each of them,
   * with the same expression, `for`, labels and summary, and no other alert but those in
   * KUBERNETES_ONLY_ALERTS.
   */
  readonly composeAlerts?: readonly AlertRule[];
}

/** An alert rule, as Prometheus's rule files and the PrometheusRule both write it. */
export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export const COMPOSE_ALERTS = 'infra/compose/prometheus/alerts.yml';

/**
 * Alerts the Kubernetes rules have and the compose stack does not, and why. Any other
 * difference between the two sets is a problem.
 */
export const KUBERNETES_ONLY_ALERTS: Readonly<Record<string, string>> = {
  CairnServiceNotReady: 'up{namespace="cairn"}: the namespace label is the Prometheus Operator\'s; compose has no such alert yet',
  CairnResultsBacklog: 'not in the compose stack yet',
};

/** The alert rules of the compose stack's Prometheus (COMPOSE_ALERTS under `root`). */
export async function composeAlerts(root: string): Promise<AlertRule[]> {
  const file = parse(await readFile(join(root, COMPOSE_ALERTS), 'utf8')) as { groups?: { rules?: Partial<AlertRule>[] }[] };
  return (file.groups ?? []).flatMap((g) => g.rules ?? []).filter((r): r is AlertRule => typeof r.alert === 'string');
}

/** The same text but for whitespace, which is layout. */
const sameExpr = (a: unknown, b: unknown) =>
  String(a ?? '')
    .replace(/\s+/g, ' ')
    .trim() ===
  String(b ?? '')
    .replace(/\s+/g, ' ')
    .trim();
/** Compose's summary as Kubernetes says it: a target compose names by `instance` is a `pod` there. */
const asPod = (summary: string | undefined) => summary?.replace(/\$labels\.instance\b/g, '$labels.pod');

/** Where the PrometheusRules' alerts and the compose stack's differ. */
function alertDriftProblems(rules: readonly K8sObject[], compose: readonly AlertRule[]): string[] {
  const problems: string[] = [];
  const ours = new Map<string, { rule: K8sObject; at: string; r: any }>();
  for (const rule of rules) {
    for (const group of rule.spec?.groups ?? []) {
      for (const r of group.rules ?? []) if (typeof r.alert === 'string') ours.set(r.alert, { rule, at: `/spec/groups/${group.name}/${r.alert}`, r });
    }
  }
  const where = rules[0] === undefined ? 'PrometheusRule' : idOf(rules[0]);
  for (const c of compose) {
    const k = ours.get(c.alert);
    if (!k) {
      problems.push(`${where}: no alert ${c.alert}, which the compose stack has (${COMPOSE_ALERTS})`);
      continue;
    }
    const differs = (field: string, theirs: unknown, mine: unknown) =>
      problems.push(
        `${idOf(k.rule)}: ${k.at}/${field}: ${JSON.stringify(mine ?? null)} is not the compose stack's ${JSON.stringify(theirs ?? null)} (${COMPOSE_ALERTS})`,
      );
    if (!sameExpr(c.expr, k.r.expr)) differs('expr', c.expr, k.r.expr);
    if ((c.for ?? '0s') !== (k.r.for ?? '0s')) differs('for', c.for, k.r.for);
    for (const label of new Set([...Object.keys(c.labels ?? {}), ...Object.keys(k.r.labels ?? {})])) {
      if (c.labels?.[label] !== k.r.labels?.[label]) differs(`labels/${label}`, c.labels?.[label], k.r.labels?.[label]);
    }
    const summary = asPod(c.annotations?.summary);
    if (!sameExpr(summary, k.r.annotations?.summary)) differs('annotations/summary', summary, k.r.annotations?.summary);
  }
  const inCompose = new Set(compose.map((c) => c.alert));
  for (const [name, { rule, at }] of ours) {
    if (!inCompose.has(name) && KUBERNETES_ONLY_ALERTS[name] === undefined)
      problems.push(`${idOf(rule)}: ${at}: not one of the compose stack's alerts (${COMPOSE_ALERTS}), nor one of KUBERNETES_ONLY_ALERTS (tools/k8s-check.ts)`);
  }
  return problems;
}

/** Every problem found in `objects`, each naming its object and field; empty when all is well. */
export function checkManifests(objects: readonly K8sObject[], options: CheckOptions): string[] {
  const problems = objects.flatMap(schemaProblems);
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
  const workloads = objects.filter((o) => podSpecOf(o) !== undefined);
  const podLabels = workloads.map((w) => w.spec?.template?.metadata?.labels as Record<string, string> | undefined);
  const problem = (o: K8sObject, text: string) => problems.push(`${idOf(o)}: ${text}`);

  for (const w of workloads) {
    const labels = w.spec?.template?.metadata?.labels;
    if (!matches(w.spec?.selector?.matchLabels, labels))
      problem(
        w,
        `/spec/selector/matchLabels ${JSON.stringify(w.spec?.selector?.matchLabels)} does not match the pod template's labels ${JSON.stringify(labels)}`,
      );
    if (w.kind === 'StatefulSet') {
      const service = find('Service', w.spec.serviceName);
      if (!service) problem(w, `/spec/serviceName: no Service ${w.spec.serviceName}`);
      else if (service.spec?.clusterIP !== 'None') problem(w, `/spec/serviceName: Service ${w.spec.serviceName} is not headless (clusterIP: None)`);
    }
    checkPod(w, podSpecOf(w));
  }

  function checkPod(w: K8sObject, pod: any): void {
    const volumes = new Map<string, any>((pod.volumes ?? []).map((v: any) => [v.name, v]));
    for (const v of pod.volumes ?? []) {
      if (v.secret)
        checkKeys(
          w,
          `/spec/template/spec/volumes/${v.name}`,
          'Secret',
          v.secret.secretName,
          (v.secret.items ?? []).map((i: any) => i.key),
        );
      if (v.configMap)
        checkKeys(
          w,
          `/spec/template/spec/volumes/${v.name}`,
          'ConfigMap',
          v.configMap.name,
          (v.configMap.items ?? []).map((i: any) => i.key),
        );
      if (v.persistentVolumeClaim && !find('PersistentVolumeClaim', v.persistentVolumeClaim.claimName)) {
        problem(w, `/spec/template/spec/volumes/${v.name}: no PersistentVolumeClaim ${v.persistentVolumeClaim.claimName}`);
      }
    }
    const containers: any[] = [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
    for (const c of containers) {
      const at = `container ${c.name}`;
      checkImage(w, at, c.image);
      const isInit = (pod.initContainers ?? []).includes(c);
      if (!isInit) {
        for (const probe of ['livenessProbe', 'readinessProbe'] as const) if (!c[probe]) problem(w, `${at}: no ${probe}`);
      }
      for (const field of ['requests.cpu', 'requests.memory', 'limits.memory']) {
        const [group, resource] = field.split('.') as [string, string];
        if (c.resources?.[group]?.[resource] === undefined) problem(w, `${at}: no resources.${field}`);
      }
      for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
        const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port;
        if (port !== undefined && !(c.ports ?? []).some((p: any) => p.name === port || p.containerPort === port))
          problem(w, `${at}: ${probe} port ${JSON.stringify(port)} is not one of the container's ports`);
      }
      for (const from of c.envFrom ?? []) {
        if (from.configMapRef) checkKeys(w, `${at}: envFrom`, 'ConfigMap', from.configMapRef.name, []);
        if (from.secretRef) checkKeys(w, `${at}: envFrom`, 'Secret', from.secretRef.name, []);
      }
      const env = new Map<string, any>((c.env ?? []).map((e: any) => [e.name, e]));
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
        if (ref) checkKeys(w, `${at}: env ${e.name}`, e.valueFrom.secretKeyRef ? 'Secret' : 'ConfigMap', ref.name, [ref.key]);
      }
      checkSeedFile(w, c, env, volumes);
      const drain = env.get('CAIRN_DRAIN_TIMEOUT_MS')?.value;
      if (drain !== undefined) {
        const grace = pod.terminationGracePeriodSeconds ?? 30;
        if (grace < Number(drain) / 1000 + 30)
          problem(
            w,
            `/spec/template/spec/terminationGracePeriodSeconds ${grace} leaves under 30 s beyond CAIRN_DRAIN_TIMEOUT_MS ${drain} of ${at}: the pod would be killed before its builds are handed back`,
          );
      }
    }
  }

  /** The secret or config map exists and holds `keys`. */
  function checkKeys(w: K8sObject, at: string, kind: 'Secret' | 'ConfigMap', name: string, keys: readonly string[]): void {
    const target = find(kind, name);
    if (!target) return void problem(w, `${at}: no ${kind} ${name}`);
    const have = new Set([...Object.keys(target.data ?? {}), ...Object.keys(target.stringData ?? {}), ...Object.keys(target.binaryData ?? {})]);
    for (const key of keys) if (!have.has(key)) problem(w, `${at}: ${kind} ${name} has no key ${key}`);
  }

  /**
   * CAIRN_NATS_NKEY_SEED_FILE names a file of a mounted Secret: that key must be there,
   * for every replica when the name holds $(POD_NAME) (a StatefulSet's workers).
   */
  function checkSeedFile(w: K8sObject, c: any, env: Map<string, any>, volumes: Map<string, any>): void {
    const file: string | undefined = env.get('CAIRN_NATS_NKEY_SEED_FILE')?.value;
    if (file === undefined) return;
    const mount = (c.volumeMounts ?? []).find((m: any) => file.startsWith(`${m.mountPath}/`));
    const secret = mount && volumes.get(mount.name)?.secret;
    if (!secret) return void problem(w, `container ${c.name}: CAIRN_NATS_NKEY_SEED_FILE ${file} is not in a mounted Secret`);
    const relative = file.slice(mount.mountPath.length + 1);
    const podNames = w.kind === 'StatefulSet' ? Array.from({ length: w.spec.replicas ?? 1 }, (_, i) => `${w.metadata.name}-${i}`) : ['POD'];
    for (const pod of podNames) {
      if (w.kind !== 'StatefulSet' && relative.includes('$(POD_NAME)'))
        return void problem(w, `container ${c.name}: CAIRN_NATS_NKEY_SEED_FILE names $(POD_NAME), which only a StatefulSet's pods have stable`);
      const path = relative.replaceAll('$(POD_NAME)', pod);
      const item = (secret.items ?? []).find((i: any) => i.path === path);
      const key = secret.items ? item?.key : path;
      if (key === undefined) problem(w, `container ${c.name}: CAIRN_NATS_NKEY_SEED_FILE ${path}: no item of Secret ${secret.secretName} is mounted there`);
      else checkKeys(w, `container ${c.name}: CAIRN_NATS_NKEY_SEED_FILE`, 'Secret', secret.secretName, [key]);
    }
  }

  function checkImage(w: K8sObject, at: string, image: string | undefined): void {
    if (!image) return void problem(w, `${at}: no image`);
    const digest = /@sha256:[0-9a-f]{64}$/.test(image);
    if (options.requireDigests && !digest) problem(w, `${at}: image ${image} is not pinned by digest (@sha256:...)`);
    if (!digest && !/:[\w][\w.-]{0,127}$/.test(image.split('/').pop() ?? '')) problem(w, `${at}: image ${image} has neither a tag nor a digest`);
  }

  const selects = (o: K8sObject, selector: Record<string, string> | undefined, at: string) => {
    if (selector === undefined || Object.keys(selector).length === 0) return;
    if (!podLabels.some((labels) => matches(selector, labels))) problem(o, `${at} ${JSON.stringify(selector)} selects no pod of any Deployment or StatefulSet`);
  };
  for (const s of byKind('Service')) {
    selects(s, s.spec?.selector, '/spec/selector');
    const pods = workloads.filter((w) => matches(s.spec?.selector, w.spec?.template?.metadata?.labels));
    for (const port of s.spec?.ports ?? []) {
      if (typeof port.targetPort !== 'string') continue;
      for (const w of pods) {
        if (!podSpecOf(w).containers.some((c: any) => (c.ports ?? []).some((p: any) => p.name === port.targetPort)))
          problem(s, `/spec/ports/${port.name}: targetPort ${port.targetPort} is no port of ${idOf(w)}`);
      }
    }
  }
  for (const pdb of byKind('PodDisruptionBudget')) selects(pdb, pdb.spec?.selector?.matchLabels ?? {}, '/spec/selector/matchLabels');
  for (const np of byKind('NetworkPolicy')) selects(np, np.spec?.podSelector?.matchLabels, '/spec/podSelector/matchLabels');
  for (const hpa of byKind('HorizontalPodAutoscaler')) {
    const ref = hpa.spec?.scaleTargetRef;
    if (!find(ref?.kind, ref?.name)) problem(hpa, `/spec/scaleTargetRef: no ${ref?.kind} ${ref?.name}`);
  }
  for (const ing of byKind('Ingress')) {
    for (const rule of ing.spec?.rules ?? []) {
      for (const path of rule.http?.paths ?? []) {
        const backend = path.backend?.service;
        const service = backend && find('Service', backend.name);
        if (!service) problem(ing, `/spec/rules: backend Service ${backend?.name} does not exist`);
        else if (backend.port?.name && !(service.spec?.ports ?? []).some((p: any) => p.name === backend.port.name))
          problem(ing, `/spec/rules: Service ${backend.name} has no port ${backend.port.name}`);
      }
    }
  }
  for (const sm of byKind('ServiceMonitor')) {
    const services = byKind('Service').filter((s) => matches(sm.spec?.selector?.matchLabels, s.metadata.labels));
    for (const e of sm.spec?.endpoints ?? []) {
      if (!services.some((s) => (s.spec?.ports ?? []).some((p: any) => p.name === e.port)))
        problem(sm, `/spec/endpoints: no selected Service has a port named ${e.port}`);
    }
  }
  for (const rule of byKind('PrometheusRule')) {
    for (const group of rule.spec?.groups ?? []) {
      for (const r of group.rules ?? []) {
        for (const p of promqlProblems(String(r.expr ?? ''), options.metrics)) problem(rule, `/spec/groups/${group.name}/${r.alert ?? r.record}/expr: ${p}`);
      }
    }
  }
  if (options.composeAlerts) problems.push(...alertDriftProblems(byKind('PrometheusRule'), options.composeAlerts));
  return problems;
}

// The command line: render, check, list the problems (exit 1 when there are any).
if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, ...flags] = process.argv.slice(2);
  if (!dir) {
    console.error('usage: node tools/k8s-check.ts OVERLAY_DIR [--digests]');
    process.exit(2);
  }
  const objects = await renderOverlay(dir);
  const root = new URL('..', import.meta.url).pathname;
  const problems = checkManifests(objects, {
    requireDigests: flags.includes('--digests'),
    metrics: await exportedMetrics(root),
    composeAlerts: await composeAlerts(root),
  });
  for (const p of problems) console.error(p);
  console.error(`${dir}: ${objects.length} objects, ${problems.length} problem(s)`);
  process.exit(problems.length ? 1 : 0);
}
