/**
 * `cairn up` as an operator meets it, with real processes: the built command with two
 * workers on one btrfs store. Killed children come back and their jobs finish with one
 * result each; Ctrl-C stops everything in order within 30 s and the next `cairn up` on
 * the same data dir finds the history and the queue; a NATS server on the default port
 * is not taken over; a NATS server without JetStream is refused. Its NATS lets in only
 * the users it made (issue 19): the CLI finds its own password, nobody else gets in.
 * It runs a docker-registry of its own, kept across restarts, and the base-image-builder
 * publishing to it (issue 13).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { PermissionViolationError, type NatsConnection } from '@nats-io/transport-node';
import { call, connectBus, streams, subjects, type BuildResult, type JobStatus, type ServiceStatus, type Submitted } from '@cairn/contracts';
import { BASE_IMAGE, POOL, ROOT, upEnv } from '../support/cluster.js';
import { withBtrfs, type TestFilesystem } from '../support/filesystems.js';
import { busyboxImage } from '../support/images.js';
import { freePort } from '../support/ports.js';

const CAIRN = join(ROOT, 'apps/cli/bin/cairn.js');
const sleepSpec = (tag: string, seconds: number) =>
  `((from ${BASE_IMAGE}) (shell /bin/sh -c) (run (shell "echo ${tag}-begins; sleep ${seconds}; echo ${tag}-ends")))`;

interface Up {
  readonly child: ChildProcess;
  output: string;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, detail: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await Promise.resolve()
      .then(probe)
      .catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s\n${detail().slice(-6000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Whether `pid` still runs (a zombie has ended). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return false;
  }
}

describe('cairn up --workers 2', () => {
  let dir: string;
  let fs: TestFilesystem;
  let env: NodeJS.ProcessEnv;
  let up: Up | undefined;
  let nc: NatsConnection | undefined;
  let blocker: Server | undefined;
  const pids = new Set<number>();
  /** Jobs that finished before the restart: the history the next `cairn up` must still know. */
  const finishedJobs: string[] = [];

  const startUp = (extra: string[] = []): Up => {
    const child = spawn(
      process.execPath,
      [CAIRN, 'up', '--workers', '2', '--client', 'alice', '--data', join(dir, 'data'), '--results-port', '0', '--drain-timeout', '3', ...extra],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const u: Up = { child, output: '', exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))) };
    child.stdout!.on('data', (d: Buffer) => (u.output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (u.output += d.toString()));
    return u;
  };
  const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CAIRN, ...args], {
        cwd: ROOT,
        env: { ...env, CAIRN_CLIENT: 'alice', ...extraEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('exit', (code) => resolve({ code, stdout, stderr }));
    });
  const clusterFile = () => JSON.parse(readFileSync(join(dir, 'home', 'cluster.json'), 'utf8')) as { natsUrl: string; pid: number; registry?: string };
  /** A blob pushed to cairn up's registry before the restart, to be found after it. */
  let pushed: { url: string; digest: string } | undefined;
  const passwordsDir = () => join(dir, 'data', 'nats-passwords');
  const password = (name: string) => readFileSync(join(passwordsDir(), `${name}.password`), 'utf8').trim();
  /** A connection as one of cairn up's users; `violations` collects what the server refused it. */
  const connectAs = async (name: string, inbox = true) => {
    const c = await connectBus({
      servers: clusterFile().natsUrl,
      name: `up-e2e-${name}`,
      user: name,
      pass: password(name),
      ...(inbox ? { inboxPrefix: `_INBOX_${name}` } : {}),
    });
    const violations: PermissionViolationError[] = [];
    void (async () => {
      for await (const s of c.status()) if (s.type === 'error' && s.error instanceof PermissionViolationError) violations.push(s.error);
    })();
    return { nc: c, violations };
  };
  const services = async (): Promise<ServiceStatus[]> => {
    const run = await cli(['admin', 'services', '--json']);
    if (run.code !== 0) throw new Error(run.stderr);
    const list = JSON.parse(run.stdout) as ServiceStatus[];
    for (const s of list) if (s.pid !== undefined) pids.add(s.pid);
    return list;
  };
  const service = async (name: string) => (await services()).find((s) => s.name === name)!;
  const submit = async (spec: string): Promise<string> => {
    const reply = await call<Submitted>(nc!, subjects.client('alice', 'submit'), { pool: POOL, spec, name: 'up-e2e' }, { timeoutMs: 10_000, retries: 3 });
    if (!reply.ok) throw new Error(reply.error.message);
    return reply.value.job;
  };
  const status = async (job: string): Promise<JobStatus> => {
    const reply = await call<JobStatus>(nc!, subjects.client('alice', 'status'), { job }, { timeoutMs: 3000, retries: 5 });
    if (!reply.ok) throw new Error(reply.error.message);
    return reply.value;
  };
  const ended = (job: string, timeoutMs = 90_000) =>
    until(
      `job ${job} ended`,
      async () => {
        const s = await status(job);
        return ['succeeded', 'failed', 'cancelled'].includes(s.state) ? s : undefined;
      },
      timeoutMs,
      () => up?.output ?? '',
    );
  const ready = async (u: Up) => {
    await until(
      'cluster ready',
      () => u.output.includes('cluster ready:'),
      120_000,
      () => u.output,
    );
    await nc?.close();
    // As cairn up's services connect: the service user sees every client's jobs and the results stream.
    nc = (await connectAs('cairn-service', false)).nc;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-up-e2e-'));
    fs = await withBtrfs({ sizeMb: 768 });
    await busyboxImage(join(dir, 'images'), BASE_IMAGE);
    await writeFile(join(dir, 'cairn.json'), JSON.stringify({ stateDir: join(dir, 'state') }));
    // The base-image-builder's matrix: one busybox image on a pool no worker serves, so its
    // rebuild waits in the queue instead of taking the workers these tests use.
    await mkdir(join(dir, 'matrix'));
    await copyFile(join(ROOT, 'infra/images/busybox.spec'), join(dir, 'matrix', 'busybox.spec'));
    await writeFile(
      join(dir, 'matrix', 'matrix.yaml'),
      'images:\n  - name: busybox:latest\n    tags: [latest]\n    bootstrap: { kind: busybox-static }\n    spec: busybox.spec\n    pools: [up-e2e-nowhere]\n    platforms: [linux/amd64]\n    schedule: "0 3 * * 1"\n',
    );
    env = {
      CAIRN_IMAGES_DIR: join(dir, 'matrix'),
      ...upEnv(dir, `btrfs:${fs.path}`, 'up-e2e-key'),
      // Quicker than the defaults: a lost worker is noticed in seconds.
      CAIRN_LEASE_TTL_MS: '4000',
      CAIRN_HEARTBEAT_MS: '400',
    };
    // Something answers on NATS's default port, as a system nats-server would.
    blocker = await new Promise<Server | undefined>((resolve) => {
      const server = createServer((s) => s.end('INFO {}\r\n'));
      server.once('error', () => resolve(undefined)); // already taken: by a real server
      server.listen(4222, '127.0.0.1', () => resolve(server));
    });
    up = startUp();
    await ready(up);
  }, 240_000);

  afterAll(async () => {
    await nc?.close();
    if (up && up.child.exitCode === null && up.child.signalCode === null) up.child.kill('SIGKILL');
    for (const pid of pids) if (running(pid)) process.kill(pid, 'SIGKILL');
    await until('leftovers gone', () => [...pids].every((p) => !running(p)) || undefined, 15_000).catch(() => undefined);
    blocker?.close();
    try {
      await fs?.cleanup();
    } finally {
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  it('starts its own NATS (not the server on :4222), says ready only when every service is, and the CLI finds it', async () => {
    expect(clusterFile().natsUrl).not.toMatch(/:4222$/);
    // Ready means ready: the moment it is printed, both workers are registered.
    const workers = await cli(['admin', 'workers', '--json']);
    expect(workers.code, workers.stderr).toBe(0);
    expect(
      (JSON.parse(workers.stdout) as { worker: string; connected: boolean }[])
        .filter((w) => w.connected)
        .map((w) => w.worker)
        .sort(),
    ).toEqual(['local-1', 'local-2']);
    const list = await services();
    expect(list.map((s) => `${s.name}:${s.state}`).sort()).toEqual([
      'base-image-builder:ready',
      'nats:ready',
      'registry:ready',
      'results-store:ready',
      'scheduler:ready',
      'spec-compiler:ready',
      'worker-1:ready',
      'worker-2:ready',
    ]);
    // The dashboard's JSON says the same.
    const { dashboard } = JSON.parse(readFileSync(join(dir, 'home', 'cluster.json'), 'utf8')) as { dashboard: string };
    const res = await fetch(new URL('api/v1/services', dashboard));
    expect(res.status).toBe(200);
    expect(((await res.json()) as ServiceStatus[]).map((s) => s.name).sort()).toEqual([
      'base-image-builder',
      'nats',
      'registry',
      'results-store',
      'scheduler',
      'spec-compiler',
      'worker-1',
      'worker-2',
    ]);
  });

  it('refuses a connection without credentials, and one with a wrong password', async () => {
    const url = clusterFile().natsUrl;
    await expect(connectBus({ servers: url, name: 'intruder', waitForServer: false, connectTimeoutMs: 3000 })).rejects.toThrow(/Authorization Violation/i);
    await expect(connectBus({ servers: url, name: 'intruder', user: 'alice', pass: 'guess', waitForServer: false, connectTimeoutMs: 3000 })).rejects.toThrow(
      /Authorization Violation/i,
    );
  });

  it('keeps the passwords in 0600 files in a 0700 dir, and names the dir (not a password) in cluster.json', () => {
    expect(statSync(passwordsDir()).mode & 0o777).toBe(0o700);
    for (const name of ['cairn-service', 'cairn-admin', 'local-1', 'local-2', 'alice']) {
      expect(statSync(join(passwordsDir(), `${name}.password`)).mode & 0o777, name).toBe(0o600);
      expect(readFileSync(join(dir, 'home', 'cluster.json'), 'utf8')).not.toContain(password(name));
    }
    expect(clusterFile()).toMatchObject({ natsPasswords: passwordsDir(), natsAdmin: 'cairn-admin' });
    expect(statSync(join(dir, 'data', 'nats', 'auth.conf')).mode & 0o777).toBe(0o600);
  });

  it("lets client alice use her own subjects only: not another client's logs, not the admin subjects", async () => {
    const alice = await connectAs('alice');
    try {
      alice.nc.subscribe(subjects.logsOfClient('bob'));
      alice.nc.publish(subjects.admin('workers'), '{}');
      alice.nc.publish(subjects.client('bob', 'cancel'), '{}');
      await until(
        'the server refused all three',
        () => (alice.violations.length >= 3 ? true : undefined),
        5000,
        () => alice.violations.map((v) => `${v.operation} ${v.subject}`).join('\n'),
      );
      expect(alice.violations.map((v) => `${v.operation} ${v.subject}`).sort()).toEqual([
        `publish ${subjects.admin('workers')}`,
        `publish ${subjects.client('bob', 'cancel')}`,
        `subscription ${subjects.logsOfClient('bob')}`,
      ]);
      // Her own requests get the scheduler's answer.
      const own = await call<JobStatus>(alice.nc, subjects.client('alice', 'status'), { job: 'no-such-job' }, { timeoutMs: 5000, retries: 2 });
      expect(own.ok ? 'ok' : own.error.code).toBe('malformed');
    } finally {
      await alice.nc.close();
    }
  });

  it('cairn submit --follow, status and admin services find their credentials themselves; a client cairn up does not know is told what to do', async () => {
    await mkdir(join(dir, 'ctx'), { recursive: true });
    await writeFile(join(dir, 'follow.spec'), sleepSpec('followed', 0));
    const submitted = await cli(['submit', '--pool', POOL, '-f', join(dir, 'follow.spec'), join(dir, 'ctx'), '--follow']);
    expect(submitted.code, submitted.stderr).toBe(0);
    expect(submitted.stdout + submitted.stderr).toContain('followed-ends');
    const job = /submitted (\S+) to/.exec(submitted.stderr)?.[1];
    expect(job, submitted.stderr).toBeDefined();
    const listed = await cli(['status', job!, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as JobStatus).state).toBe('succeeded');
    expect((await services()).map((s) => s.name)).toContain('scheduler');
    // Not in cairn up's users: a clear error (exit 1), not a hang and not "unreachable".
    const stranger = await cli(['status', job!], { CAIRN_CLIENT: 'mallory' });
    expect(stranger.code).toBe(1);
    expect(stranger.stderr).toMatch(/for client mallory there is none .*start cairn up with --client mallory/);
    // The same server without the cluster file's passwords: refused.
    const anonymous = await cli(['status', job!], { CAIRN_HOME: join(dir, 'elsewhere'), CAIRN_NATS: clusterFile().natsUrl });
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/refused a connection without credentials/);
  });

  it('kill -9 of the worker running a job: the worker is restarted, the job requeued with the reason and finished once', async () => {
    const job = await submit(sleepSpec('victim', 6));
    const onWorker = await until(
      'the job runs',
      async () => {
        const s = await status(job);
        return s.state === 'running' ? s.worker : undefined;
      },
      60_000,
      () => up!.output,
    );
    const name = onWorker === 'local-1' ? 'worker-1' : 'worker-2';
    // Killed once its first run has logged something: the log then has two runs to tell apart.
    await until('the first run logged', async () => ((await cli(['logs', job])).stdout.includes('victim-begins') ? true : undefined), 30_000);
    const victim = await service(name);
    process.kill(victim.pid!, 'SIGKILL');
    await until(
      `${name} restarted`,
      async () => {
        const s = await service(name);
        return s.restarts === 1 && s.state === 'ready' ? s : undefined;
      },
      30_000,
      () => up!.output,
    );
    expect(up!.output).toContain(`${name} exited (signal SIGKILL); restarting in 1 s`);
    const done = await ended(job);
    finishedJobs.push(job);
    expect(done.state).toBe('succeeded');
    expect(done.attempts).toBe(2);
    expect(done.requeues?.[0]?.reason).toMatch(new RegExp(`worker ${onWorker} (lost it \\(the worker restarted\\)|stopped answering|no longer runs it)`));
    const logs = await cli(['logs', job]);
    expect(logs.stdout).toMatch(/victim-begins\n(.|\n)*--- attempt 2 \(requeued: worker local-\d .*\) ---\n(.|\n)*victim-ends\n/);
    expect(up!.output).toMatch(new RegExp(`job ${job} \\(up-e2e, client alice\\) requeued: run 1 lost: worker ${onWorker}`));
  });

  it('kill -9 of the scheduler with a job running: restarted, and the job finishes once', async () => {
    const job = await submit(sleepSpec('through-restart', 3));
    await until('the job runs', async () => ((await status(job)).state === 'running' ? true : undefined), 60_000);
    process.kill((await service('scheduler')).pid!, 'SIGKILL');
    await until(
      'the scheduler restarted and ready',
      async () => {
        const s = await service('scheduler');
        return s.restarts === 1 && s.state === 'ready' ? s : undefined;
      },
      60_000,
      () => up!.output,
    );
    expect((await ended(job)).state).toBe('succeeded');
    finishedJobs.push(job);
  });

  it('runs its own registry (its address in the ready line and cluster.json) with the base-image-builder on it; kill -9 of the registry: restarted', async () => {
    const registry = clusterFile().registry!;
    expect(registry).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(up!.output).toContain(`, registry ${registry} (Ctrl-C to stop)`);
    const v2 = await fetch(`${registry}/v2/`);
    expect(v2.status).toBe(200);
    expect(v2.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    // The base-image-builder runs, is healthy, and publishes to this registry.
    expect(await service('base-image-builder')).toMatchObject({ state: 'ready', restarts: 0 });
    expect(up!.output).toContain(`registry ${registry}, http `);
    const images = await cli(['images', 'status', '--json']);
    expect(images.code, images.stderr).toBe(0);
    expect((JSON.parse(images.stdout) as { name: string }[]).map((i) => i.name)).toEqual(['busybox:latest']);

    // A blob pushed now is still there after the restart below (the storage is in the data dir).
    const blob = Buffer.from(`kept across restarts ${Date.now()}`);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const started = await fetch(`${registry}/v2/up-e2e/blobs/uploads/`, { method: 'POST' });
    expect(started.status).toBe(202);
    const location = new URL(started.headers.get('location')!, registry);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, { method: 'PUT', body: blob, headers: { 'content-type': 'application/octet-stream' } });
    expect(put.status).toBe(201);
    pushed = { url: `${registry}/v2/up-e2e/blobs/${digest}`, digest };

    const victim = await service('registry');
    expect(readFileSync(`/proc/${victim.pid}/cmdline`, 'utf8')).toContain('/usr/bin/docker-registry');
    process.kill(victim.pid!, 'SIGKILL');
    const back = await until(
      'the registry restarted and ready',
      async () => {
        const s = await service('registry');
        return s.restarts === 1 && s.state === 'ready' ? s : undefined;
      },
      30_000,
      () => up!.output,
    );
    expect(back.pid).not.toBe(victim.pid);
    expect(up!.output).toContain('registry exited (signal SIGKILL); restarting in 1 s');
    expect((await fetch(`${registry}/v2/`)).status).toBe(200);
    expect((await fetch(pushed.url, { method: 'HEAD' })).status).toBe(200);
  });

  it('one result per job in the results stream', async () => {
    const js = jetstream(nc!);
    const consumer = await js.consumers.get(streams.results.name);
    const perJob = new Map<string, number>();
    const messages = await consumer.fetch({ max_messages: 1000, expires: 2000 });
    for await (const m of messages) {
      const r = m.json<BuildResult>();
      perJob.set(r.job, (perJob.get(r.job) ?? 0) + 1);
      if (m.info.pending === 0) break;
    }
    // The two above and the one followed through the CLI.
    expect(perJob.size).toBe(3);
    expect([...perJob.values()]).toEqual([1, 1, 1]);
  });

  it('Ctrl-C with a build running: the build goes back to the queue, all exits within 30 s; the next cairn up finds history and queue', async () => {
    expect(finishedJobs).toHaveLength(2);
    const job = await submit(sleepSpec('interrupted', 60));
    await until('the job runs', async () => ((await status(job)).state === 'running' ? true : undefined), 60_000);
    const before = await services();
    const passwords = ['cairn-service', 'cairn-admin', 'local-1', 'local-2', 'alice'].map((name) => `${name}=${password(name)}`);
    const interrupted = Date.now();
    up!.child.kill('SIGINT');
    const exit = await up!.exited;
    expect(Date.now() - interrupted).toBeLessThan(30_000);
    expect(exit, up!.output).toEqual({ code: 0, signal: null });
    for (const s of before) expect(running(s.pid!), `${s.name} still runs`).toBe(false);
    expect(up!.output).toMatch(/worker-\d still building after 3 s: handing its builds back to the queue/);
    // Stopped in order: workers, results-store, scheduler and base-image-builder, NATS and the registry last.
    const at = (line: string) => up!.output.lastIndexOf(line);
    expect(at('results-store stopping')).toBeGreaterThan(at('worker-1 exited'));
    expect(at('scheduler stopping')).toBeGreaterThan(at('results-store exited'));
    expect(at('nats stopping')).toBeGreaterThan(at('scheduler exited'));
    expect(at('registry stopping')).toBeGreaterThan(at('base-image-builder exited'));
    const registry = pushed?.url.replace(/\/v2\/.*/, '');
    expect(existsSync(join(dir, 'home', 'cluster.json'))).toBe(false);

    up = startUp();
    await ready(up);
    // The same users with the same passwords: what holds a password keeps working.
    expect(['cairn-service', 'cairn-admin', 'local-1', 'local-2', 'alice'].map((name) => `${name}=${password(name)}`)).toEqual(passwords);
    // The registry on the same port, with what was pushed before.
    expect(clusterFile().registry).toBe(registry);
    expect((await fetch(pushed!.url, { method: 'HEAD' })).headers.get('docker-content-digest')).toBe(pushed!.digest);
    expect((await cli(['status', finishedJobs[0]!])).code).toBe(0);
    const again = await until(
      'the handed-back job runs again',
      async () => {
        const s = await status(job);
        return s.attempts === 2 && ['running', 'succeeded'].includes(s.state) ? s : undefined;
      },
      60_000,
      () => up!.output,
    );
    expect(again.requeues?.[0]?.reason).toMatch(/worker local-\d shut down and handed it back/);
    for (const earlier of finishedJobs) expect((await status(earlier)).state).toBe('succeeded');

    // A second Ctrl-C cancels the build and stops at once.
    const second = Date.now();
    up.child.kill('SIGINT');
    await until('stopping', () => up!.output.includes('interrupted; stopping'), 5000);
    up.child.kill('SIGINT');
    await up.exited;
    expect(Date.now() - second).toBeLessThan(15_000);
    expect(up.output).toContain('SIGINT again: cancelling the running builds and stopping now');
  });

  it('refuses a --nats server without JetStream (exit 3)', async () => {
    const port = await freePort();
    const server = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p))!;
    const plain = spawn(server, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    try {
      const url = `nats://127.0.0.1:${port}`;
      await until(
        'the plain server listens',
        async () => {
          const c = await connectBus({ servers: url, name: 'probe', waitForServer: false, connectTimeoutMs: 500 });
          await c.close();
          return true;
        },
        15_000,
      );
      const refused = startUp(['--nats', url]);
      const exit = await refused.exited;
      expect(exit.code, refused.output).toBe(3);
      expect(refused.output).toMatch(/the NATS server at nats:\/\/127\.0\.0\.1:\d+ has no JetStream/);
    } finally {
      plain.kill('SIGTERM');
    }
  });
});
