/**
 * Issue 17: a Dockerfile imported with `--resolve` (the base image's Env, WorkingDir,
 * User and accounts read through the fetcher) builds to the same files as `docker build`
 * of the Dockerfile itself. One busybox root filesystem is both the OCI-layout image
 * Cairn builds from and the image `docker import`s into a dockerd the test starts; the
 * final filesystems are compared as listings of path, owner, mode and content digest.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayoutFetcher } from '@cairn/fetcher';
import { writeOciImage } from '@cairn/oci-image';
import { createSandbox } from '@cairn/sandbox';
import { importDockerfile } from '@cairn/spec';
import { parseStoreSpec } from '@cairn/store';
import { Builder, readBaseImages } from '../src/index.js';
import { startDockerd, type RunningDockerd } from '../../../test/support/dockerd.js';
import { BUSYBOX_PATH } from '../../../test/support/images.js';
import { makeBusyboxRootfs } from '../../../test/support/rootfs.js';

const run = promisify(execFile);
const BASE = 'cairn/app-base:1';
/** What the daemon makes in every container (mountpoints, its marker), not the build's. */
const DOCKER_OWN = new Set(['.dockerenv', 'dev', 'proc', 'sys', 'etc/hosts', 'etc/hostname', 'etc/resolv.conf', 'etc/mtab']);

const DOCKERFILES: Readonly<Record<string, string>> = {
  // The image's WorkingDir and User, a name in --chown, $PATH from the image's Env.
  'image defaults': `FROM ${BASE}
ENV PATH=/opt/tool/bin:$PATH
COPY --chown=user:user app/ ./
COPY conf.txt /etc/app/
RUN echo "$PATH" > path.txt && id -u > uid.txt && pwd > pwd.txt
USER root
RUN mkdir -p /opt/tool/bin && chmod 600 /etc/app/conf.txt && ln -s /srv/app/run.sh /bin/app
`,
  // A stage copied from, ARG before FROM, a directory source onto a trailing-slash
  // destination. The stage's files are root's: Docker keeps their owners through COPY
  // --from, a spec copy gives them to the current user (docs/decisions.md).
  'two stages': `ARG IMAGE=${BASE}
FROM \${IMAGE} AS build
USER root
RUN mkdir -p /out/lib && echo built > /out/lib/a
FROM \${IMAGE}
COPY --from=build /out/ /srv/app/dist/
RUN find dist | sort > listing.txt
`,
  // A local archive, unpacked with its owners and modes (a user's files in it).
  'local archive': `FROM ${BASE}
ADD pkg.tar.gz /opt/pkg/
RUN find /opt/pkg | sort > /srv/app/unpacked.txt
`,
};

/** Every entry under `root`: path, owner, mode, and a digest of a file's bytes or a link's target. */
async function listing(root: string, dir = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(root, dir))).sort()) {
    const rel = dir === '' ? name : `${dir}/${name}`;
    if (DOCKER_OWN.has(rel)) continue;
    const st = await lstat(join(root, rel));
    const content = st.isFile() ? createHash('sha256').update(await readFile(join(root, rel))).digest('hex').slice(0, 12) : st.isSymbolicLink() ? await readlink(join(root, rel)) : '';
    out.push(`${rel} ${st.uid}:${st.gid} ${st.mode.toString(8)} ${content}`);
    if (st.isDirectory()) out.push(...(await listing(root, rel)));
  }
  return out;
}

describe('an imported Dockerfile builds to the files docker build makes', () => {
  let dir: string;
  let dockerd: RunningDockerd;
  let builder: Builder;
  let store: ReturnType<typeof parseStoreSpec>;
  const layout = () => join(dir, 'images');
  const context = () => join(dir, 'context');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-import-docker-'));
    const rootfs = join(dir, 'rootfs');
    await mkdir(rootfs);
    await chmod(rootfs, 0o755);
    await makeBusyboxRootfs(rootfs);
    await mkdir(join(rootfs, 'srv/app'), { recursive: true });
    await chown(join(rootfs, 'srv/app'), 1000, 1000);
    await writeOciImage(layout(), BASE, [{ rootfs, config: { env: [['PATH', BUSYBOX_PATH]], cmd: ['/bin/sh'], workdir: '/srv/app', user: 'user' } }]);
    dockerd = await startDockerd();
    await dockerd.importRootfs(rootfs, BASE, [`ENV PATH=${BUSYBOX_PATH}`, 'WORKDIR /srv/app', 'USER user', 'CMD ["/bin/sh"]']);
    await mkdir(join(context(), 'app'), { recursive: true });
    await writeFile(join(context(), 'app/run.sh'), '#!/bin/sh\necho app\n', { mode: 0o755 });
    await writeFile(join(context(), 'app/data.txt'), 'data\n');
    await writeFile(join(context(), 'conf.txt'), 'secret=1\n');
    const pkg = join(dir, 'pkg');
    await mkdir(join(pkg, 'bin'), { recursive: true });
    await mkdir(join(pkg, 'share'));
    await writeFile(join(pkg, 'bin/tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
    await writeFile(join(pkg, 'share/readme'), 'read me\n', { mode: 0o640 });
    await run('chown', ['-R', '1000:1000', join(pkg, 'share')]);
    await run('tar', ['-czf', join(context(), 'pkg.tar.gz'), '--numeric-owner', '-C', pkg, 'bin', 'share']);
    store = parseStoreSpec(`rsync:${join(dir, 'store')}`);
    const sandbox = createSandbox('runc', { stateDir: join(dir, 'state') });
    builder = await Builder.open({ store, sandbox, fetcher: new OciLayoutFetcher(layout()), dbPath: join(dir, 'db.sqlite'), secretKey: 'test-key' });
  }, 180_000);
  afterAll(async () => {
    builder?.close();
    await dockerd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  // The classic builder has no heredocs: the file BuildKit would write is checked as such.
  it('builds a COPY heredoc to the file BuildKit writes: its bytes, mode and owner', async () => {
    const body = "#!/bin/sh\necho \"it's $1\" \\\n";
    const text = `FROM ${BASE}\nCOPY --chmod=0750 --chown=user:user <<'EOF' bin/hello\n${body}EOF\nCOPY <<'A' /etc/motd\nhi\nA\n`;
    const { spec, warnings } = importDockerfile(text, { images: await readBaseImages(new OciLayoutFetcher(layout()), [BASE]) });
    expect(warnings).toHaveLength(2);
    const id = await builder.build(spec, { contextDir: context(), log: () => undefined });
    const files = await store.withRootfs(id, async (rootfs) => ({
      hello: [await readFile(join(rootfs, 'srv/app/bin/hello'), 'utf8'), await lstat(join(rootfs, 'srv/app/bin/hello'))] as const,
      motd: [await readFile(join(rootfs, 'etc/motd'), 'utf8'), await lstat(join(rootfs, 'etc/motd'))] as const,
    }));
    expect(files.hello[0]).toBe(body);
    expect(files.hello[1]).toMatchObject({ uid: 1000, gid: 1000, mode: 0o100750 });
    expect(files.motd[0]).toBe('hi\n');
    expect(files.motd[1]).toMatchObject({ uid: 0, gid: 0, mode: 0o100644 });
  }, 120_000);

  it('downloads an ADD --checksum URL through the image\'s wget, and fails a step whose download does not match', async () => {
    const payload = 'tool v1\n';
    const server = createServer((_req, res) => res.end(payload));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    // The host's loopback: a sandbox sharing the host's network, as OBuilder's (network host).
    const sharedStore = parseStoreSpec(`rsync:${join(dir, 'store-shared')}`);
    const shared = await Builder.open({ store: sharedStore, sandbox: createSandbox('runc', { stateDir: join(dir, 'state-shared'), hostNetwork: 'shared' }), fetcher: new OciLayoutFetcher(layout()), dbPath: join(dir, 'store-shared', 'db.sqlite'), secretKey: 'test-key' });
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dl/tool.txt`;
      const sha = createHash('sha256').update(payload).digest('hex');
      const images = await readBaseImages(new OciLayoutFetcher(layout()), [BASE]);
      const good = importDockerfile(`FROM ${BASE}\nADD --checksum=sha256:${sha} --chown=user:user ${url} /opt/\n`, { images }).spec;
      const id = await shared.build(good, { contextDir: context(), log: () => undefined });
      const [text, st] = await sharedStore.withRootfs(id, async (r) => [await readFile(join(r, 'opt/tool.txt'), 'utf8'), await lstat(join(r, 'opt/tool.txt'))] as const);
      expect(text).toBe(payload);
      expect(st).toMatchObject({ uid: 1000, gid: 1000, mode: 0o100600 });
      const bad = importDockerfile(`FROM ${BASE}\nADD --checksum=sha256:${'0'.repeat(64)} ${url} /opt/tool.txt\n`, { images }).spec;
      await expect(shared.build(bad, { contextDir: context(), log: () => undefined })).rejects.toThrow(/failed: the command exited with code 1$/);
    } finally {
      shared.close();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 120_000);

  it.each(Object.keys(DOCKERFILES))('%s', async (name) => {
    const text = DOCKERFILES[name]!;
    // Cairn: import with what --resolve reads, then build the spec.
    const fetcher = new OciLayoutFetcher(layout());
    const images = await readBaseImages(fetcher, [BASE]);
    const { spec } = importDockerfile(text, { images });
    const id = await builder.build(spec, { contextDir: context(), log: () => undefined });
    const cairnFiles = await store.withRootfs(id, (rootfs) => listing(rootfs));
    // Docker: the classic builder (BuildKit needs the buildx plugin, absent here), no network.
    const tag = `cairn/compare-${name.replace(/\W/g, '-')}:1`;
    await writeFile(join(dir, 'Dockerfile'), text);
    await run('docker', ['-H', `unix://${dockerd.socketPath}`, 'build', '-q', '--network', 'none', '-f', join(dir, 'Dockerfile'), '-t', tag, context()], { env: { ...process.env, DOCKER_BUILDKIT: '0' } });
    const exported = join(dir, `export-${name.replace(/\W/g, '-')}`);
    await mkdir(exported);
    const container = (await dockerd.docker(['create', tag])).trim();
    await run('sh', ['-c', `docker -H unix://${dockerd.socketPath} export ${container} | tar --numeric-owner -xpf - -C ${exported}`]);
    const dockerFiles = await listing(exported);
    expect(cairnFiles).toEqual(dockerFiles);
    // The defaults took effect: the RUN ran as the image's user, in its WorkingDir.
    if (name === 'image defaults') {
      expect(cairnFiles).toContainEqual(expect.stringMatching(/^srv\/app\/uid\.txt 1000:1000 /));
      expect(await store.withRootfs(id, (r) => readFile(join(r, 'srv/app/pwd.txt'), 'utf8'))).toBe('/srv/app\n');
    }
  }, 180_000);
});
