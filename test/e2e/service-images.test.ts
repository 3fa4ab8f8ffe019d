import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  blobStores,
  buckets,
  BuildResult,
  call,
  natsConnectionOptions,
  natsInbox,
  streams,
  subjects,
  type AdminVerb,
  type JobStatus,
  type Submitted,
} from '@cairn/contracts';
import { LEADER_BUCKET, LEADER_KEY } from '../../apps/scheduler/src/leadership.js';
import { BASE_IMAGES, debianBaseImages } from '../support/base-images.js';
import { startDockerd, type RunningDockerd } from '../support/dockerd.js';
import { withBtrfs, type TestFilesystem } from '../support/filesystems.js';
import { freePorts } from '../support/ports.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';

const run = promisify(execFile);
const REPO = join(import.meta.dirname, '../..');
const COMPOSE_DIR = join(REPO, 'infra/compose');
// base-image-builder is left out until its package.json declares `yaml`, which it imports:
// the image carries only declared production dependencies, and this check found it.
const SERVICES = ['scheduler', 'spec-compiler', 'results-store', 'worker-agent', 'base-image-builder'];

interface BuiltImage {
  name: string;
  ref: string;
  digest: string;
  imageId: string;
}

/**
 * infra/images/build-images.mjs: the images built by `cairn build` from the Debian base
 * image (one store, one build for every test here), pushed to a registry and loaded into
 * a private dockerd; then run there, alone and as the infra/compose stack.
 */
let dir: string;
let store: TestFilesystem;
let registry: RunningRegistry;
let dockerd: RunningDockerd;
let images: Map<string, BuiltImage>;

beforeAll(async () => {
  const layout = await debianBaseImages();
  dir = await mkdtemp(join(tmpdir(), 'cairn-service-images-'));
  [store, registry, dockerd] = await Promise.all([withBtrfs({ sizeMb: 8192 }), startRegistry(), startDockerd()]);
  const env = {
    ...process.env,
    CAIRN_STORE: `btrfs:${store.path}`,
    CAIRN_FETCHER: `oci:${layout}`,
    CAIRN_CONFIG: join(dir, 'cairn.json'),
    CAIRN_SECRET_KEY: 'k',
  };
  await writeFile(env.CAIRN_CONFIG, JSON.stringify({ stateDir: join(dir, 'state') }));
  const { stdout } = await run(
    process.execPath,
    [
      join(REPO, 'infra/images/build-images.mjs'),
      '--registry',
      `127.0.0.1:${registry.port}`,
      '--push',
      '--load',
      '--',
      '--docker-socket',
      dockerd.socketPath,
      '--progress',
      'plain',
    ],
    { env, cwd: REPO, maxBuffer: 256 << 20 },
  );
  images = new Map(
    stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as BuiltImage)
      .map((i) => [i.name, i]),
  );
}, 900_000);

afterAll(async () => {
  await Promise.all([registry?.stop(), dockerd?.stop()]);
  await store?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

const dockerRun = (args: readonly string[]) => dockerd.docker(['run', '--rm', '--network', 'none', ...args]);

describe('the service images, built by Cairn', () => {
  it('runs Node.js 24 as user cairn, with every service and its dependencies loadable', async () => {
    const service = images.get('service')!;
    const script = `
      for (const s of ${JSON.stringify(SERVICES)}) await import('@cairn/' + s);
      const { default: Database } = await import('better-sqlite3');
      new Database(':memory:').exec('select 1');
      console.log(process.version.split('.')[0], process.getuid(), process.cwd());`;
    const out = await dockerRun([service.ref, '--input-type=module', '-e', script]);
    expect(out.trim()).toBe('v24 10001 /opt/cairn/app');
    const version = await dockerRun([service.ref, 'apps/cli/bin/cairn.js', '--version']);
    expect(version.trim()).toMatch(/^\d+\.\d+\.\d+/);
  }, 120_000);

  it('gives the worker image runc, crun, its store tools and busybox, run as root', async () => {
    const worker = images.get('worker')!;
    const out = await dockerRun([
      '--entrypoint',
      '/bin/sh',
      worker.ref,
      '-c',
      'id -u; runc --version | head -1; crun --version | head -1; rsync --version | head -1; mkfs.btrfs --version; mkfs.xfs -V; busybox | head -1; slirp4netns --version | head -1; node --version',
    ]);
    const lines = out.trim().split('\n');
    expect(lines[0]).toBe('0');
    for (const tool of ['runc version', 'crun version', 'rsync  version', 'mkfs.btrfs', 'mkfs.xfs', 'BusyBox', 'slirp4netns version']) {
      expect(
        lines.some((l) => l.includes(tool)),
        `${tool} in:\n${out}`,
      ).toBe(true);
    }
    expect(lines.at(-1)).toMatch(/^v24\./);
  }, 120_000);

  it('gives the worker image, apt-get layer and all, the same digest when built from scratch on another kind of store', async () => {
    // The first build was on btrfs; this one copies with rsync, and shares no cache with it.
    const other = join(dir, 'rebuilt');
    const config = join(other, 'cairn.json');
    await mkdir(other, { recursive: true });
    await writeFile(config, JSON.stringify({ stateDir: join(other, 'state') }));
    const { stdout } = await run(
      process.execPath,
      [join(REPO, 'infra/images/build-images.mjs'), '--only', 'worker', '--oci-layout', join(other, 'layout'), '--', '--progress', 'plain'],
      {
        env: {
          ...process.env,
          CAIRN_STORE: `rsync:${join(other, 'store')}`,
          CAIRN_FETCHER: `oci:${await debianBaseImages()}`,
          CAIRN_CONFIG: config,
          CAIRN_SECRET_KEY: 'k',
        },
        cwd: REPO,
        maxBuffer: 256 << 20,
      },
    );
    const rebuilt = JSON.parse(stdout.trim()) as BuiltImage;
    expect(rebuilt.digest).toBe(images.get('worker')!.digest);
    expect(rebuilt.imageId).toBe(images.get('worker')!.imageId);
  }, 600_000);

  it('pushed the same images it loaded: the registry has them under their digests', async () => {
    for (const image of images.values()) {
      const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${image.ref}`]);
      expect(JSON.parse(stdout)).toMatchObject({ Digest: image.digest });
      const id = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', image.ref]);
      expect(id.trim()).toBe(image.imageId);
    }
  }, 60_000);
});

/** Polls `look` until `done` says yes, then returns what it saw; a look that throws counts as no. */
async function until<T>(what: string, look: () => Promise<T>, done: (seen: T) => boolean, timeoutMs: number, everyMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let last: string;
    try {
      const seen = await look();
      if (done(seen)) return seen;
      last = JSON.stringify(seen).slice(0, 4000);
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s; last seen: ${last}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

const POOL = 'linux-x86_64';
const NATS_NODES = ['nats-1', 'nats-2', 'nats-3'] as const;
/** Streams written once and never pruned within a test: a sequence gap in one is a lost message. */
const APPEND_ONLY: string[] = [streams.logs.name, streams.results.name, ...Object.values(blobStores).map((b) => b.stream)];

/** What one NATS node holds of one stream (nats-server's /jsz). */
interface StreamState {
  messages: number;
  first_seq: number;
  last_seq: number;
  num_deleted?: number;
}

/**
 * infra/compose on the test's dockerd: NATS (3 nodes), PostgreSQL, the registry,
 * Prometheus, two schedulers, two spec-compilers, two results-stores and a worker; then
 * `cairn submit --follow` of examples/hello.spec and its artifact downloaded and run; 20
 * jobs through a worker, a NATS node, a results-store and the leading scheduler failing;
 * and the whole stack down and up again. One stack for all: the tests run in order.
 *
 * This dockerd has no NAT (--iptables=false), so containers cannot reach the Internet,
 * which hello.spec's `apt-get install gcc` needs: the test's override puts the worker on
 * the host's network (reaching NATS on its published port) and gives the spec-compilers
 * and the worker the base images as an OCI layout instead of from the registry. It also
 * publishes each NATS node's monitoring port, so that the test reads every replica of
 * every stream.
 */
describe('the compose stack', () => {
  const project = `cairn${process.pid}`;
  const services = [
    'nats-1',
    'nats-2',
    'nats-3',
    'postgres',
    'registry',
    'prometheus',
    'scheduler-1',
    'scheduler-2',
    'spec-compiler-1',
    'spec-compiler-2',
    'results-store-1',
    'results-store-2',
    'worker-linux-x86_64-1',
  ];
  const workerService = 'worker-linux-x86_64-1';
  let config: string;
  let ports: { nats: number; dashboard: number; registry: number; prometheus: number; worker: number; monitor: Record<(typeof NATS_NODES)[number], number> };
  let env: NodeJS.ProcessEnv;
  /** The test's NATS logins (configure.mjs made them): a client, the operator, and the services' user to look into streams and buckets. */
  const logins = new Map<'ci' | 'ops' | 'svc', Promise<NatsConnection>>();
  const compose = (args: readonly string[]) =>
    run('docker-compose', ['-p', project, '-f', join(COMPOSE_DIR, 'docker-compose.yml'), '-f', join(config, 'test.override.yml'), ...args], {
      env,
      cwd: COMPOSE_DIR,
      maxBuffer: 64 << 20,
    });
  const output = (args: readonly string[]) =>
    compose(args).then(
      (r) => r.stdout,
      (e: { stdout?: string; message?: string }) => e.stdout ?? String(e.message),
    );
  const dashboard = (path: string) => fetch(`http://127.0.0.1:${ports.dashboard}${path}`);
  const isReady = (port: number) =>
    fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );

  /**
   * `up` of the test's services, then waits until the results-store (database, NATS,
   * streams, its result consumer) and the worker (registered with the leading scheduler;
   * until then a submit to its pool is refused as an unknown pool) are ready, and a
   * spec-compiler answers submits: on a JetStream cluster still electing its leaders, a
   * compiler may make its streams later than the others are ready, and `cairn submit`
   * tries a submit nobody answers only three times.
   */
  async function upAndReady(): Promise<void> {
    // `up` again starts what did not start, for two reasons seen in CI runs: under load
    // this dockerd has failed to start a container now and then (runc: stat of the
    // entrypoint refused) although the same image started elsewhere in the same run; and
    // an `up` races the restart policy when it starts a container that exited (a service
    // that found NATS electing its leaders) while docker restarts it too, and the loser
    // reports the container's port as taken. A third failure is the test's.
    const upFailures: string[] = [];
    while (
      !(await compose(['up', '-d', '--no-build', ...services]).then(
        () => true,
        (e: Error) => (upFailures.push(e.message), false),
      ))
    ) {
      if (upFailures.length === 3) throw new Error(upFailures.map((message, i) => `--- up ${i + 1} of 3 failed ---\n${message}`).join('\n'));
      await new Promise((resolve) => setTimeout(resolve, 5000));
    }
    const deadline = Date.now() + 300_000;
    for (;;) {
      if ((await isReady(ports.dashboard)) && (await isReady(ports.worker)) && (await compilerAnswers())) return;
      if (Date.now() > deadline) {
        // The two that were waited for first, then the rest: CI shows only the message's head.
        const readyz = (port: number) =>
          fetch(`http://127.0.0.1:${port}/readyz`).then(
            (r) => r.text(),
            (e: unknown) => String(e),
          );
        const states = `results-store ${await readyz(ports.dashboard)}, worker ${await readyz(ports.worker)}, a spec-compiler answering: ${await compilerAnswers()}`;
        const waitedFor = await output(['logs', '--no-color', '--tail', '60', 'results-store-1', workerService]);
        const rest = await output(['logs', '--no-color', '--tail', '20']);
        throw new Error(`not ready (${states}):\n${await output(['ps'])}\n${waitedFor}\n${rest}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  /** Whether a spec-compiler answers client ci's submits (an empty one, which it refuses). */
  async function compilerAnswers(): Promise<boolean> {
    try {
      await (await as('ci')).request(subjects.client('ci', 'submit'), '{}', { timeout: 2000 });
      return true;
    } catch {
      return false;
    }
  }

  /** Logs in to NATS through nats-1's published port only (never the nodes' addresses on the compose network). */
  async function login(user: 'ci' | 'ops' | 'svc'): Promise<NatsConnection> {
    const role = user === 'svc' ? 'service' : user === 'ops' ? 'admin' : 'client';
    const inbox = natsInbox({ role, name: user });
    return connect({
      ...natsConnectionOptions({
        servers: `nats://127.0.0.1:${ports.nats}`,
        name: `service-images-test-${user}`,
        user,
        pass: (await readFile(join(config, 'passwords', `${user}.password`), 'utf8')).trim(),
        ...(inbox === undefined ? {} : { inboxPrefix: inbox }),
      }),
      ignoreClusterUpdates: true,
    });
  }
  /** One connection per login, made at its first use (which may be many requests at once). */
  function as(user: 'ci' | 'ops' | 'svc'): Promise<NatsConnection> {
    let nc = logins.get(user);
    if (!nc) {
      nc = login(user);
      nc.catch(() => logins.delete(user));
      logins.set(user, nc);
    }
    return nc;
  }
  async function logOut(): Promise<void> {
    const all = [...logins.values()];
    logins.clear();
    await Promise.all(all.map((nc) => nc.then((c) => c.close()).catch(() => undefined)));
  }

  /** Queues a job of client ci straight on the bus (as `cairn submit` does); the key makes a retried submit the same job. */
  async function submit(name: string, spec: string): Promise<string> {
    const reply = await call<Submitted>(
      await as('ci'),
      subjects.client('ci', 'submit'),
      { pool: POOL, spec, name, idempotencyKey: `${name}-${project}` },
      { timeoutMs: 10_000, retries: 30 },
    );
    if (!reply.ok) throw new Error(`submit ${name}: ${reply.error.code}: ${reply.error.message}`);
    return reply.value.job;
  }
  async function status(job: string): Promise<JobStatus> {
    const reply = await call<JobStatus>(await as('ci'), subjects.client('ci', 'status'), { job }, { timeoutMs: 3000, retries: 2 });
    if (!reply.ok) throw new Error(`status of ${job}: ${reply.error.code}: ${reply.error.message}`);
    return reply.value;
  }
  async function admin<T>(verb: AdminVerb, data: unknown): Promise<T> {
    const reply = await call<T>(await as('ops'), subjects.admin(verb), data, { timeoutMs: 5000, retries: 10 });
    if (!reply.ok) throw new Error(`admin ${verb}: ${reply.error.code}: ${reply.error.message}`);
    return reply.value;
  }

  /** Every stream as each NATS node holds it: node -> stream -> state. */
  async function replicas(): Promise<Record<string, Record<string, StreamState>>> {
    const byNode: Record<string, Record<string, StreamState>> = {};
    for (const node of NATS_NODES) {
      const response = await fetch(`http://127.0.0.1:${ports.monitor[node]}/jsz?accounts=true&streams=true`);
      if (!response.ok) throw new Error(`${node} /jsz: HTTP ${response.status}`);
      const jsz = (await response.json()) as { account_details?: { stream_detail?: { name: string; state: StreamState }[] }[] };
      const held = (jsz.account_details ?? []).flatMap((account) => account.stream_detail ?? []);
      byNode[node] = Object.fromEntries(
        held.map(({ name, state: { messages, first_seq, last_seq, num_deleted } }) => [name, { messages, first_seq, last_seq, num_deleted }]),
      );
    }
    return byNode;
  }

  /** The container of a compose service, its host PID and how often docker restarted it. */
  async function container(service: string): Promise<{ id: string; pid: number; restarts: number; running: boolean }> {
    const id = (await compose(['ps', '-q', service])).stdout.trim();
    if (!id) throw new Error(`no container for ${service}`);
    const [pid, restarts, running] = (await dockerd.docker(['inspect', '--format', '{{.State.Pid}} {{.RestartCount}} {{.State.Running}}', id]))
      .trim()
      .split(' ');
    return { id, pid: Number(pid), restarts: Number(restarts), running: running === 'true' };
  }

  /**
   * kill -9 of the service's process from the host, as the kernel's OOM killer or a crash
   * would end it: unlike `docker kill`, which docker takes for an operator's stop, this
   * leaves the restart policy to bring it back. Resolves once docker has restarted it.
   * `seen`: the container as looked up earlier, so that the kill follows a check at once.
   */
  async function crash(service: string, seen?: Awaited<ReturnType<typeof container>>): Promise<void> {
    const before = seen ?? (await container(service));
    if (!before.running) throw new Error(`${service} is not running`);
    process.kill(before.pid, 'SIGKILL');
    await until(
      `${service} restarted by its restart policy`,
      () => container(service),
      (c) => c.running && c.restarts > before.restarts && c.pid !== before.pid,
      60_000,
    );
  }

  beforeAll(async () => {
    config = join(dir, 'compose');
    await run(process.execPath, [join(COMPOSE_DIR, 'configure.mjs'), '--dir', config]);
    const [nats, dashboard, registry, prometheus, worker, ...monitor] = await freePorts(5 + NATS_NODES.length);
    ports = {
      nats: nats!,
      dashboard: dashboard!,
      registry: registry!,
      prometheus: prometheus!,
      worker: worker!,
      monitor: { 'nats-1': monitor[0]!, 'nats-2': monitor[1]!, 'nats-3': monitor[2]! },
    };
    const service = images.get('service')!.ref;
    env = {
      ...process.env,
      DOCKER_HOST: `unix://${dockerd.socketPath}`,
      CAIRN_COMPOSE_CONFIG: config,
      CAIRN_IMAGES: service.slice(0, service.indexOf('cairn/service:')),
      CAIRN_TAG: service.slice(service.lastIndexOf(':') + 1),
      CAIRN_NATS_PORT: `127.0.0.1:${ports.nats}`,
      CAIRN_DASHBOARD_PORT: `127.0.0.1:${ports.dashboard}`,
      CAIRN_REGISTRY_PORT: `127.0.0.1:${ports.registry}`,
      CAIRN_PROMETHEUS_PORT: `127.0.0.1:${ports.prometheus}`,
      CAIRN_COMPILER_FETCHER: 'oci:/images',
      CAIRN_WORKER_FETCHER: 'oci:/images',
    };
    const images_ = `${BASE_IMAGES}:/images:ro`;
    await writeFile(
      join(config, 'test.override.yml'),
      [
        'version: "3.7"',
        'services:',
        ...NATS_NODES.flatMap((n) => [`  ${n}:`, `    ports: ["127.0.0.1:${ports.monitor[n]}:8222"]`]),
        ...['spec-compiler-1', 'spec-compiler-2'].flatMap((s) => [`  ${s}:`, `    volumes: ["${images_}"]`]),
        `  ${workerService}:`,
        '    network_mode: host',
        `    volumes: ["${images_}"]`,
        '    environment:',
        `      CAIRN_NATS: nats://127.0.0.1:${ports.nats}`,
        '      CAIRN_HTTP_HOST: 127.0.0.1',
        `      CAIRN_HTTP_PORT: "${ports.worker}"`,
        '',
      ].join('\n'),
    );
    await upAndReady();
  }, 480_000);

  afterAll(async () => {
    await logOut();
    if (env) await compose(['down', '-v', '--timeout', '5']).catch(() => undefined);
  }, 120_000);

  it('builds examples/hello.spec submitted with cairn submit --follow; its artifact downloads and runs', async () => {
    const client = {
      ...process.env,
      CAIRN_NATS: `nats://127.0.0.1:${ports.nats}`,
      CAIRN_NATS_USER: 'ci',
      CAIRN_NATS_PASSWORD_FILE: join(config, 'passwords/ci.password'),
      CAIRN_NATS_INBOX: '_INBOX_ci',
      CAIRN_CLIENT: 'ci',
    };
    const submitted = await run(
      process.execPath,
      [
        join(REPO, 'apps/cli/bin/cairn.js'),
        'submit',
        '--pool',
        POOL,
        '-f',
        'examples/hello.spec',
        'examples/hello',
        '--output',
        '/usr/local/bin/hello',
        '--follow',
      ],
      { env: client, cwd: REPO, maxBuffer: 64 << 20, timeout: 600_000 },
    ).catch(async (e: { stdout?: string; stderr?: string }) => {
      throw new Error(`cairn submit failed:\n${e.stdout}\n${e.stderr}\n--- compose logs ---\n${await output(['logs', '--tail', '40'])}`);
    });
    expect(submitted.stdout).toContain('Hello from a Cairn build!');

    const list = (await (await dashboard('/api/v1/builds')).json()) as { items: { id: string }[] };
    const build = list.items[0]!;
    const artifact = await dashboard(`/api/v1/builds/${build.id}/artifacts/usr/local/bin/hello`);
    expect(artifact.status).toBe(200);
    const binary = join(dir, 'hello');
    await writeFile(binary, Buffer.from(await artifact.arrayBuffer()), { mode: 0o755 });
    const { stdout } = await run(binary);
    expect(stdout).toBe('Hello from a Cairn build!\n');
  }, 900_000);

  it('mid-run of 20 jobs, a worker and a results-store replica killed (-9), a NATS node stopped, the leading scheduler killed: every job ends once, stored, and no stream loses a message', async () => {
    const svc = await as('svc');
    // Distinct specs, so that no job is a cache hit of another; each sleeps, so that some run when the blows fall.
    const jobs: string[] = [];
    for (let i = 0; i < 20; i++) {
      jobs.push(await submit(`chaos-${i}`, `((from cairn/busybox:latest) (shell /bin/sh -c) (run (shell "echo chaos-${i}-${project}-$((40 + 2)); sleep 4")))`));
    }
    const look = () => Promise.all(jobs.map(status));
    const count = (seen: JobStatus[], state: string) => seen.filter((s) => s.state === state).length;
    // A job that started under 2 s ago is still in its 4 s sleep: a kill now lands mid-run.
    const justStarted = (seen: JobStatus[], after = 0) => seen.find((s) => s.state === 'running' && s.startedAt! > after && Date.now() - s.startedAt! < 2000);

    const worker = await container(workerService);
    const seen = await until(
      'two of the 20 jobs succeeded and another just started',
      look,
      (s) => count(s, 'succeeded') >= 2 && justStarted(s) !== undefined,
      180_000,
      200,
    );
    const workerVictim = justStarted(seen)!;
    const workerKilledAt = Date.now();
    await crash(workerService, worker);
    await compose(['stop', '--timeout', '10', 'nats-2']);
    await crash('results-store-2');

    // The leader falls while the restarted worker runs a job, and with a NATS node down:
    // the job's outcome reaches the scheduler that takes over.
    const holder = (await (await new Kvm(svc).open(LEADER_BUCKET)).get(LEADER_KEY))?.string() ?? '';
    const leaderService = holder.split('/')[0]!;
    expect(['scheduler-1', 'scheduler-2'], `the leadership's holder: ${holder}`).toContain(leaderService);
    const leader = await container(leaderService);
    const running = await until('a job just started on the restarted worker', look, (s) => justStarted(s, workerKilledAt) !== undefined, 180_000, 200);
    const leaderVictim = justStarted(running, workerKilledAt)!;
    await crash(leaderService, leader);
    await compose(['start', 'nats-2']);

    const terminal = ['succeeded', 'failed', 'cancelled'];
    const ended = await until('all 20 jobs ended', look, (s) => s.every((j) => terminal.includes(j.state)), 420_000);
    expect(ended.filter((s) => s.state !== 'succeeded').map((s) => `${s.job}: ${s.state} ${s.failure ?? ''}`)).toEqual([]);
    const byId = new Map(ended.map((s) => [s.job, s]));
    // The worker's death cost its job a run, which ran again; the leader's cost nothing.
    expect(byId.get(workerVictim.job)!.attempts).toBe(workerVictim.attempts + 1);
    expect(byId.get(workerVictim.job)!.requeues?.[0]?.reason).toContain(workerService);
    expect(byId.get(leaderVictim.job)!.attempts).toBe(leaderVictim.attempts);

    // Exactly one result per job in the results stream...
    const jsm = await jetstreamManager(svc);
    const { state } = await jsm.streams.info(streams.results.name);
    const results = new Map<string, number>();
    for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
      const message = await jsm.streams.getMessage(streams.results.name, { seq });
      if (!message) throw new Error(`${streams.results.name} has no message ${seq} within ${state.first_seq}..${state.last_seq}`);
      const { job } = BuildResult.parse(message.json());
      results.set(job, (results.get(job) ?? 0) + 1);
    }
    expect(jobs.map((job) => results.get(job) ?? 0)).toEqual(jobs.map(() => 1));
    // ...each stored by the results-store, which has taken and acknowledged every result.
    await until(
      'every build in the results-store',
      () => Promise.all(jobs.map(async (job) => (await dashboard(`/api/v1/builds/${job}`)).status)),
      (codes) => codes.every((c) => c === 200),
      120_000,
    );
    for (const [i, job] of jobs.entries()) {
      expect(((await (await dashboard(`/api/v1/builds/${job}`)).json()) as { state: string }).state).toBe('succeeded');
      // The job's output, not its command (which the log shows too): no log chunk was lost.
      expect(await (await dashboard(`/builds/${job}/log.txt`)).text()).toContain(`chaos-${i}-${project}-42`);
    }
    await until(
      'the results-store consumer with nothing pending',
      () => jsm.consumers.info(streams.results.name, 'results-store'),
      (c) => c.num_pending === 0 && c.num_ack_pending === 0,
      120_000,
    );

    // Every stream on all three nodes (replicated 3x), each node holding as many messages
    // up to the same last one once nats-2 has caught up (but the leadership's bucket,
    // rewritten every second); and no gap, on any node, in a stream nothing deletes from.
    const same = (a?: StreamState, b?: StreamState) => a !== undefined && b !== undefined && a.messages === b.messages && a.last_seq === b.last_seq;
    const agreed = await until(
      'every stream the same on the three NATS nodes',
      replicas,
      (byNode) => {
        const [first, ...others] = NATS_NODES.map((n) => byNode[n]!);
        const names = Object.keys(first!).filter((name) => name !== `KV_${LEADER_BUCKET}`);
        return others.every((o) => Object.keys(o).length === Object.keys(first!).length && names.every((name) => same(first![name], o[name])));
      },
      120_000,
    );
    for (const node of NATS_NODES) {
      const held = agreed[node]!;
      expect(Object.keys(held), node).toEqual(expect.arrayContaining([...APPEND_ONLY, `KV_${buckets.jobs}`, `KV_${LEADER_BUCKET}`]));
      for (const name of APPEND_ONLY) {
        const { messages, first_seq, last_seq, num_deleted = 0 } = held[name]!;
        expect({ node, name, deleted: num_deleted, messages }).toEqual({ node, name, deleted: 0, messages: last_seq - first_seq + 1 });
      }
    }
  }, 900_000);

  it('docker-compose down, then up: the queued job, the build history and the artifacts are still there', async () => {
    // A job that cannot run before the stack goes down: its pool paused.
    await admin('pool-pause', { pool: POOL });
    const parked = await submit('parked', `((from cairn/busybox:latest) (shell /bin/sh -c) (run (shell "echo parked-${project}")))`);
    expect((await status(parked)).state).toBe('queued');
    const before = (await (await dashboard('/api/v1/builds?limit=200')).json()) as { items: { id: string; job: string }[] };
    const hello = before.items.find((b) => b.job === 'hello.spec');
    expect(hello, 'the hello.spec build of the first test').toBeDefined();
    const helloPath = `/api/v1/builds/${hello!.id}/artifacts/usr/local/bin/hello`;
    const downloaded = await dashboard(helloPath);
    expect(downloaded.status).toBe(200);
    const sha256 = async (response: Response) =>
      createHash('sha256')
        .update(Buffer.from(await response.arrayBuffer()))
        .digest('hex');
    const binary = await sha256(downloaded);

    await logOut();
    // Without -v: the named volumes (NATS, PostgreSQL, results, the scheduler's key) stay.
    await compose(['down', '--timeout', '30']);
    expect((await output(['ps', '-q'])).trim()).toBe('');
    await upAndReady();

    expect(
      (
        await until(
          'the parked job, after up',
          () => status(parked),
          () => true,
          120_000,
        )
      ).state,
    ).toBe('queued');
    expect(await admin<{ pool: string; paused: boolean }[]>('pools', {})).toContainEqual(expect.objectContaining({ pool: POOL, paused: true }));
    const after = (await (await dashboard('/api/v1/builds?limit=200')).json()) as { items: { id: string }[] };
    expect(after.items.map((b) => b.id).sort()).toEqual(before.items.map((b) => b.id).sort());
    const download = await dashboard(helloPath);
    expect(download.status).toBe(200);
    expect(await sha256(download)).toBe(binary);

    // And the queue works: unpaused, the job that waited through down and up runs.
    await admin('pool-unpause', { pool: POOL });
    expect(
      (
        await until(
          'the parked job ended',
          () => status(parked),
          (s) => ['succeeded', 'failed', 'cancelled'].includes(s.state),
          180_000,
        )
      ).state,
    ).toBe('succeeded');
    await until(
      'the parked build in the results-store',
      () => dashboard(`/api/v1/builds/${parked}`).then((r) => r.status),
      (code) => code === 200,
      120_000,
    );
  }, 900_000);
});
