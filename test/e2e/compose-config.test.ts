import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const run = promisify(execFile);
const REPO = join(import.meta.dirname, '../..');
const COMPOSE_DIR = join(REPO, 'infra/compose');

/** Every `cairn_*` metric name the services' sources register. */
async function exportedMetrics(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const app of await readdir(join(REPO, 'apps'))) {
    const src = join(REPO, 'apps', app, 'src');
    const files = await readdir(src, { recursive: true }).catch(() => [] as string[]);
    for (const file of files.filter((f) => f.endsWith('.ts'))) {
      for (const m of (await readFile(join(src, file), 'utf8')).matchAll(/name: '(cairn_[a-z_]+)'/g)) names.add(m[1]!);
    }
  }
  return names;
}

/** The compose stack's files, checked without running it (service-images.test.ts runs it). */
describe('infra/compose', () => {
  let config: string;
  beforeAll(async () => {
    config = await mkdtemp(join(tmpdir(), 'cairn-compose-config-'));
    await run(process.execPath, [join(COMPOSE_DIR, 'configure.mjs'), '--dir', config]);
  }, 60_000);
  afterAll(async () => {
    if (config) await rm(config, { recursive: true, force: true });
  });

  it("is a valid stack for docker-compose 1.29 with the issue's services, each Cairn one logged in to NATS", async () => {
    const { stdout } = await run('docker-compose', ['-f', join(COMPOSE_DIR, 'docker-compose.yml'), 'config'], {
      env: { ...process.env, CAIRN_COMPOSE_CONFIG: config },
      cwd: COMPOSE_DIR,
    });
    const stack = parse(stdout) as { services: Record<string, { environment?: Record<string, string>; volumes?: (string | { source: string })[] }> };
    expect(Object.keys(stack.services).sort()).toEqual([
      'base-image-builder',
      'nats-1',
      'nats-2',
      'nats-3',
      'postgres',
      'prometheus',
      'registry',
      'results-store-1',
      'results-store-2',
      'scheduler-1',
      'scheduler-2',
      'spec-compiler-1',
      'spec-compiler-2',
      'worker-linux-x86_64-1',
      'worker-linux-x86_64-large-1',
    ]);
    const conf = await readFile(join(config, 'nats.conf'), 'utf8');
    for (const [name, service] of Object.entries(stack.services)) {
      const user = service.environment?.CAIRN_NATS_USER;
      if (!service.environment?.CAIRN_NATS) continue;
      expect(user, `${name} logs in`).toBeDefined();
      expect(conf, `${name}'s user ${user} is in nats.conf`).toContain(`user: "${user}"`);
      expect(service.environment.CAIRN_JETSTREAM_REPLICAS).toBe('3');
    }
  });

  it('alerts only on metrics the services export, and scrapes each service on its fixed port', async () => {
    const exported = await exportedMetrics();
    const alerts = parse(await readFile(join(COMPOSE_DIR, 'prometheus/alerts.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const rules = alerts.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert).sort()).toEqual(['CairnBaseImageFailing', 'CairnPoolWithoutWorkers', 'CairnQueueWaiting', 'CairnWorkerDiskLow']);
    for (const rule of rules) {
      for (const [name] of rule.expr.matchAll(/cairn_[a-z_]+/g)) {
        expect(exported, `${rule.alert} uses ${name}`).toContain(name.replace(/_(bucket|sum|count)$/, ''));
      }
    }
    const { DEFAULT_HTTP_PORTS } = await import('@cairn/service-kit');
    const scrape = parse(await readFile(join(COMPOSE_DIR, 'prometheus/prometheus.yml'), 'utf8')) as {
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    for (const job of scrape.scrape_configs.filter((j) => j.job_name !== 'nats')) {
      const service = job.job_name === 'worker' ? 'worker-agent' : job.job_name;
      const port = (DEFAULT_HTTP_PORTS as Record<string, number>)[service];
      for (const target of job.static_configs.flatMap((c) => c.targets)) expect(target, job.job_name).toMatch(new RegExp(`:${port}$`));
    }
  });
});
