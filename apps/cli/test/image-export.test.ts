import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type RunningDockerd } from '../../../test/support/dockerd.js';
import { startRegistry, type RunningRegistry } from '../../../test/support/registry.js';
import { cliStore, IMAGE, type CliStore } from './cli-process.js';

const run = promisify(execFile);

// Run as root (it writes /srv), then leave the image as user 1000 in /srv with GREETING set.
const OPS = `(run (shell "mkdir -p /srv && echo built-by-cairn > /srv/made && chown -R 1000:1000 /srv"))
  (workdir /srv) (env GREETING hello) (user (uid 1000) (gid 1000))`;
const ENTRYPOINT = JSON.stringify(['/bin/sh', '-c', 'echo "$GREETING $(cat made) as $(id -u) in $(pwd):" "$@"', 'sh']);

interface Exported {
  id: string;
  image: { ref: string; digest: string; imageId: string; pushed?: string; loaded?: boolean };
}

/** `cairn build --image` on two stores that each build the spec from scratch. */
describe('cairn build --image (the final snapshot as an OCI image)', () => {
  let first: CliStore;
  let second: CliStore;
  let registry: RunningRegistry;
  let dockerd: RunningDockerd;

  beforeAll(async () => {
    [first, second, registry, dockerd] = await Promise.all([cliStore('rsync'), cliStore('rsync'), startRegistry(), startDockerd()]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([first?.cleanup(), second?.cleanup(), registry?.stop(), dockerd?.stop()]);
  }, 60_000);

  it("writes, pushes and loads the image with the spec's env, user and workdir; another machine building the same spec gets the same digest", async () => {
    const host = `127.0.0.1:${registry.port}`;
    const spec = await first.specFile('app.spec', OPS);
    const imageFlags = ['--image', `${host}/cairn/app:1`, '--entrypoint', ENTRYPOINT, '--cmd', '["default"]', '--label', 'org.example.role=test'];
    const built = await first.cairn([
      'build',
      '-f',
      spec,
      first.dir,
      '--json',
      ...imageFlags,
      '--oci-layout',
      join(first.dir, 'layout'),
      '--push',
      '--load',
      '--docker-socket',
      dockerd.socketPath,
    ]);
    expect(built.status, built.stderr).toBe(0);
    const result = JSON.parse(built.stdout) as Exported;
    expect(result.image).toMatchObject({ ref: `${host}/cairn/app:1`, pushed: `${host}/cairn/app:1`, loaded: true });

    const out = await dockerd.docker(['run', '--rm', '--network', 'none', `${host}/cairn/app:1`]);
    expect(out).toBe('hello built-by-cairn as 1000 in /srv: default\n');
    const id = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', `${host}/cairn/app:1`]);
    expect(id.trim()).toBe(result.image.imageId);

    const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${host}/cairn/app:1`]);
    expect(JSON.parse(stdout)).toMatchObject({
      Digest: result.image.digest,
      Labels: { 'org.example.role': 'test' },
      Env: expect.arrayContaining(['GREETING=hello']),
    });

    const again = await second.cairn([
      'build',
      '-f',
      await second.specFile('app.spec', OPS),
      second.dir,
      '--json',
      ...imageFlags,
      '--oci-layout',
      join(second.dir, 'layout'),
    ]);
    expect(again.status, again.stderr).toBe(0);
    const rebuilt = JSON.parse(again.stdout) as Exported;
    expect(rebuilt.id).toBe(result.id);
    expect(rebuilt.image.digest).toBe(result.image.digest);
    const other = await second.cairn([
      'build',
      '-f',
      await second.specFile('app.spec', OPS),
      second.dir,
      '--json',
      ...imageFlags,
      '--oci-layout',
      join(second.dir, 'layout'),
      '--cmd',
      '["other"]',
    ]);
    expect((JSON.parse(other.stdout) as Exported).image.digest).not.toBe(result.image.digest);
  }, 180_000);

  it('refuses flags that cannot work before building, and names the registry that cannot be reached', async () => {
    const spec = await first.specFile('app.spec', OPS);
    const nowhere = await first.cairn(['build', '-f', spec, first.dir, '--image', 'cairn/app:1']);
    expect(nowhere.status).toBe(2);
    expect(nowhere.stderr).toContain('--image: say where the image goes: --oci-layout DIR, --push and/or --load');
    const stray = await first.cairn(['build', '-f', spec, first.dir, '--push']);
    expect(stray.stderr).toContain('need --image REF');
    const entry = await first.cairn(['build', '-f', spec, first.dir, '--image', 'a:1', '--load', '--entrypoint', '/bin/sh']);
    expect([entry.status, entry.stderr]).toEqual([2, 'cairn: --entrypoint must be a JSON list of strings, as in \'["/bin/sh", "-c", "..."]\', not /bin/sh\n']);

    const closed = await startRegistry();
    await closed.stop();
    const unreachable = await first.cairn(['build', '-f', spec, first.dir, '--image', `127.0.0.1:${closed.port}/cairn/app:1`, '--push']);
    expect(unreachable.status).toBe(1);
    expect(unreachable.stderr).toContain(`cannot reach registry http://127.0.0.1:${closed.port}: ECONNREFUSED`);
  }, 120_000);
});

describe("cairn build --image --image-config (a Dockerfile's metadata carried into the image)", () => {
  let store: CliStore;
  beforeAll(async () => {
    store = await cliStore('rsync');
  }, 120_000);
  afterAll(async () => {
    await store?.cleanup();
  }, 60_000);

  it('imports CMD, ENTRYPOINT, EXPOSE, LABEL and STOPSIGNAL, and the image built has them, --label overriding the file', async () => {
    const dockerfile = join(store.dir, 'Dockerfile');
    await writeFile(
      dockerfile,
      [
        `FROM ${IMAGE}`,
        'WORKDIR /srv',
        'LABEL org.opencontainers.image.title=app role=web',
        'EXPOSE 8080 53/udp',
        'ENTRYPOINT ["/bin/echo"]',
        'CMD exec serve',
        'STOPSIGNAL SIGQUIT',
        '',
      ].join('\n'),
    );
    const config = join(store.dir, 'image.json');
    const imported = await store.cairn(['import', '-f', dockerfile, '--image-config', config]);
    expect(imported.status, imported.stderr).toBe(0);
    expect(imported.stderr.match(/carried to/g)).toHaveLength(5);
    const spec = join(store.dir, 'app.spec');
    await writeFile(spec, imported.stdout);
    const layout = join(store.dir, 'layout');
    const built = await store.cairn([
      'build',
      '-f',
      spec,
      store.dir,
      '--image',
      'cairn/app:1',
      '--oci-layout',
      layout,
      '--image-config',
      config,
      '--label',
      'role=api',
    ]);
    expect(built.status, built.stderr).toBe(0);
    const { stdout } = await run('skopeo', ['inspect', '--config', `oci:${layout}:cairn/app:1`]);
    expect((JSON.parse(stdout) as { config: unknown }).config).toEqual({
      Entrypoint: ['/bin/echo'],
      Cmd: ['/bin/sh', '-c', 'exec serve'],
      ExposedPorts: { '53/udp': {}, '8080/tcp': {} },
      Labels: { 'org.opencontainers.image.title': 'app', role: 'api' },
      StopSignal: 'SIGQUIT',
      WorkingDir: '/srv',
      User: '0:0',
      Env: expect.any(Array) as unknown,
    });
  }, 180_000);

  it('names the file and the field of a bad --image-config, before building', async () => {
    const spec = await store.specFile('app.spec', '(run (shell "exit 7"))');
    const config = join(store.dir, 'bad.json');
    const cases: [string, string][] = [
      ['{"cmd": "serve"}', `"cmd" must be a list of strings, not "serve"`],
      ['{"Cmd": ["serve"]}', 'unknown field "Cmd"; the fields are entrypoint, cmd, labels, exposedPorts, stopSignal'],
      ['{"exposedPorts": ["http"]}', 'exposed port must be PORT or PORT/tcp|udp|sctp, not "http"'],
      ['[', 'not JSON'],
    ];
    for (const [text, reason] of cases) {
      await writeFile(config, text);
      const r = await store.cairn([
        'build',
        '-f',
        spec,
        store.dir,
        '--image',
        'cairn/app:1',
        '--oci-layout',
        join(store.dir, 'layout'),
        '--image-config',
        config,
      ]);
      expect([r.status, r.stderr], text).toEqual([1, expect.stringContaining(`cairn: --image-config ${config}: ${reason}`) as unknown]);
    }
  }, 60_000);
});
