/**
 * Issue 17: a Dockerfile imported with `--resolve` (the base image's Env, WorkingDir,
 * User and accounts read through the fetcher) builds to the same files as `docker build`
 * of the Dockerfile itself. One busybox root filesystem is both the OCI-layout image
 * Cairn builds from and the image `docker import`s into a dockerd the test starts; the
 * final filesystems are compared as listings of path, owner, mode and content digest.
 * Docker here is the classic builder: BuildKit needs the buildx plugin, which the docker
 * CLI of this machine lacks, so a BuildKit-only instruction is checked against what
 * BuildKit documents, and the classic builder's refusal or difference is asserted.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, cp, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayoutFetcher } from '@cairn/fetcher';
import { writeOciImage } from '@cairn/oci-image';
import { createSandbox } from '@cairn/sandbox';
import { baseImagesOfDockerfile, importDockerfile, type DockerfileImportOptions } from '@cairn/spec';
import { parseStoreSpec } from '@cairn/store';
import { Builder, readBaseImages } from '../src/index.js';
import { startDockerd, type RunningDockerd } from '../../../test/support/dockerd.js';
import { BUSYBOX_PATH } from '../../../test/support/images.js';
import { makeBusyboxRootfs } from '../../../test/support/rootfs.js';
import { listing } from './tree-listing.js';

const run = promisify(execFile);
const BASE = 'cairn/app-base:1';
/** The one base image of the corpus Dockerfiles built here, as they name it: both builders get the busybox rootfs made here under this name, with the real image's config (Env PATH, Cmd sh). */
const BUSYBOX = 'busybox:1.36';
const FIXTURES = join(import.meta.dirname, '..', '..', 'spec', 'test', 'fixtures', 'dockerfiles');

/**
 * The corpus Dockerfiles (libs/spec/test/fixtures/dockerfiles/corpus) built by both here,
 * with the build args both get. Each starts from BUSYBOX only; its build context is
 * contexts/NAME beside the corpus, its .dockerignore corpus/NAME.dockerignore if any.
 */
const BUILT_FROM_CORPUS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'busybox-args-stages': { FLAVOUR: 'full', BUILD_NUMBER: '42' },
  'busybox-config-bundle': {},
  'busybox-cron-jobs': {},
  'busybox-dockerignore': {},
  'busybox-env-path': {},
  'busybox-multistage-compile': {},
  'busybox-rootfs-overlay': {},
  'busybox-shell-forms': {},
  'busybox-shell-tool': { TOOL_VERSION: '2.0.1' },
  'busybox-static-site': {},
};
/** What the daemon makes in every container (mountpoints, its marker), not the build's. */
const DOCKER_OWN = new Set(['.dockerenv', 'dev', 'proc', 'sys', 'etc/hosts', 'etc/hostname', 'etc/resolv.conf', 'etc/mtab']);
const dockerOwn = (path: string) => DOCKER_OWN.has(path);

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
  // destination. The stage's files are user 1000's, which Docker keeps through COPY
  // --from, while a spec copy gives them to the current user, root (docs/decisions.md):
  // the one difference, asserted below.
  'two stages': `ARG IMAGE=${BASE}
FROM \${IMAGE} AS build
USER root
RUN mkdir -p /out/lib && echo built > /out/lib/a && chown -R 1000:1000 /out
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

/** Git keeps only the execute bit: directories 0755, files 0755 or 0644, whatever the checkout's umask made. */
async function gitModes(path: string): Promise<void> {
  const st = await stat(path);
  if (!st.isDirectory()) return chmod(path, st.mode & 0o100 ? 0o755 : 0o644);
  await chmod(path, 0o755);
  for (const name of await readdir(path)) await gitModes(join(path, name));
}

/** `line` of a listing with another owner or mode. */
function relisted(line: string, change: { owner?: string | undefined; mode?: string | undefined }): string {
  const [path, owner, mode, ...rest] = line.split(' ');
  return [path, change.owner ?? owner, change.mode ?? mode, ...rest].join(' ');
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
    const busybox = join(dir, 'rootfs-busybox');
    await mkdir(busybox);
    await chmod(busybox, 0o755);
    await makeBusyboxRootfs(busybox);
    await writeOciImage(layout(), BUSYBOX, [{ rootfs: busybox, config: { env: [['PATH', BUSYBOX_PATH]], cmd: ['sh'] } }]);
    dockerd = await startDockerd();
    await dockerd.importRootfs(rootfs, BASE, [`ENV PATH=${BUSYBOX_PATH}`, 'WORKDIR /srv/app', 'USER user', 'CMD ["/bin/sh"]']);
    await dockerd.importRootfs(busybox, BUSYBOX, [`ENV PATH=${BUSYBOX_PATH}`, 'CMD ["sh"]']);
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

  /** Imports `text` as `cairn import --resolve` does and builds the spec: the listing of its result. */
  async function buildWithCairn(text: string, contextDir: string, options: Pick<DockerfileImportOptions, 'buildArgs' | 'dockerignore'> = {}) {
    const images = await readBaseImages(new OciLayoutFetcher(layout()), baseImagesOfDockerfile(text, { buildArgs: options.buildArgs ?? {} }));
    const { spec } = importDockerfile(text, { ...options, images });
    const id = await builder.build(spec, { contextDir, log: () => undefined });
    return { id, cairn: await store.withRootfs(id, (rootfs) => listing(rootfs, dockerOwn)) };
  }

  /** `docker build` of `text` with the classic builder and no network: the listing of the image's files. */
  async function buildWithDocker(name: string, text: string, contextDir: string, buildArgs: Readonly<Record<string, string>> = {}) {
    const slug = name.replace(/\W/g, '-');
    const tag = `cairn/compare-${slug}:1`;
    const dockerfile = join(dir, `${slug}.Dockerfile`);
    await writeFile(dockerfile, text);
    const args = Object.entries(buildArgs).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]);
    await run('docker', ['-H', `unix://${dockerd.socketPath}`, 'build', '-q', '--network', 'none', ...args, '-f', dockerfile, '-t', tag, contextDir], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
    });
    const exported = join(dir, `export-${slug}`);
    await mkdir(exported);
    const container = (await dockerd.docker(['create', tag])).trim();
    await run('sh', ['-c', `docker -H unix://${dockerd.socketPath} export ${container} | tar --numeric-owner -xpf - -C ${exported}`]);
    const files = await listing(exported, dockerOwn);
    // Seen on a loaded machine: an export with no files, which is dockerd's failure, not the import's.
    if (!files.includes('bin 0:0 40755 ')) throw new Error(`docker export of ${tag} holds no /bin: dockerd lost the container's files`);
    return files;
  }

  /**
   * One build after the other: with both at once on a loaded machine, dockerd's builds
   * failed on files missing from their overlay mounts.
   */
  async function buildBoth(name: string, text: string, contextDir: string, options: Pick<DockerfileImportOptions, 'buildArgs' | 'dockerignore'> = {}) {
    const { id, cairn } = await buildWithCairn(text, contextDir, options);
    return { id, cairn, docker: await buildWithDocker(name, text, contextDir, options.buildArgs) };
  }

  it('builds at least 10 corpus Dockerfiles, each from the busybox image alone', () => {
    const names = Object.keys(BUILT_FROM_CORPUS);
    expect(names.length).toBeGreaterThanOrEqual(10);
    for (const name of names) {
      const text = readFileSync(join(FIXTURES, 'corpus', `${name}.Dockerfile`), 'utf8');
      expect(baseImagesOfDockerfile(text, { buildArgs: BUILT_FROM_CORPUS[name] }), name).toEqual([BUSYBOX]);
    }
  });

  it.each(Object.keys(BUILT_FROM_CORPUS))(
    'corpus %s',
    async (name) => {
      const text = await readFile(join(FIXTURES, 'corpus', `${name}.Dockerfile`), 'utf8');
      const ignoreFile = join(FIXTURES, 'corpus', `${name}.dockerignore`);
      const dockerignore = existsSync(ignoreFile) ? await readFile(ignoreFile, 'utf8') : undefined;
      const contextDir = join(dir, 'contexts', name);
      // A Dockerfile that copies nothing from its context has none in git, which keeps no empty directory.
      if (existsSync(join(FIXTURES, 'contexts', name))) await cp(join(FIXTURES, 'contexts', name), contextDir, { recursive: true });
      else await mkdir(contextDir, { recursive: true });
      if (dockerignore !== undefined) await writeFile(join(contextDir, '.dockerignore'), dockerignore);
      await gitModes(contextDir);
      const { cairn, docker } = await buildBoth(name, text, contextDir, {
        buildArgs: BUILT_FROM_CORPUS[name]!,
        ...(dockerignore === undefined ? {} : { dockerignore }),
      });
      expect(cairn).toEqual(docker);
    },
    180_000,
  );

  it('gives COPY --chmod files the mode BuildKit documents, an option the classic builder refuses', async () => {
    const text = `FROM ${BUSYBOX}\nWORKDIR /srv\nCOPY --chmod=0640 --chown=1000:1000 conf.txt app/run.sh ./\nCOPY --chmod=0700 app/run.sh /usr/local/bin/run\n`;
    await writeFile(join(dir, 'chmod.Dockerfile'), text);
    const classic = run('docker', ['-H', `unix://${dockerd.socketPath}`, 'build', '-q', '-f', join(dir, 'chmod.Dockerfile'), context()], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
    });
    await expect(classic).rejects.toThrow(/the --chmod option requires BuildKit/);
    // The same Dockerfile without --chmod gives Docker's files; --chmod changes only the modes of what it copied.
    const { cairn } = await buildWithCairn(text, context());
    const plain = await buildWithDocker('without-chmod', text.replace(/--chmod=\d+ /g, ''), context());
    const modes: Record<string, string> = { 'srv/conf.txt': '100640', 'srv/run.sh': '100640', 'usr/local/bin/run': '100700' };
    expect(cairn).toEqual(plain.map((line) => relisted(line, { mode: modes[line.split(' ')[0]!] })));
  }, 180_000);

  it("gives ADD --chown of an archive what it unpacks, as BuildKit 0.23 does, where the classic builder keeps the archive's owners", async () => {
    const { cairn, docker } = await buildBoth('archive-chown', `FROM ${BUSYBOX}\nADD --chown=1000:1000 pkg.tar.gz /opt/pkg/\n`, context());
    expect(docker).toContainEqual(expect.stringMatching(/^opt\/pkg\/bin\/tool 0:0 100755 /));
    expect(docker).toContainEqual(expect.stringMatching(/^opt 0:0 40755 $/));
    expect(cairn).toEqual(docker.map((line) => (line.startsWith('opt') ? relisted(line, { owner: '1000:1000' }) : line)));
  }, 180_000);

  it("leaves the missing parents of a --chown copy root's, where Docker makes them the owner's", async () => {
    const { cairn, docker } = await buildBoth('chown-parents', `FROM ${BUSYBOX}\nCOPY --chown=1000:1000 conf.txt /opt/app/etc/conf.txt\n`, context());
    expect(docker).toContainEqual('opt/app/etc 1000:1000 40755 ');
    expect(cairn).toEqual(docker.map((line) => (/^opt(\/app(\/etc)?)? /.test(line) ? relisted(line, { owner: '0:0' }) : line)));
  }, 180_000);

  it('makes no directory for a WORKDIR that nothing then writes in, where Docker makes it', async () => {
    const { cairn, docker } = await buildBoth('workdir-only', `FROM ${BUSYBOX}\nWORKDIR /data\nWORKDIR /srv\nCOPY conf.txt ./\n`, context());
    expect(docker).toContainEqual('data 0:0 40755 ');
    expect(cairn).toEqual(docker.filter((line) => line !== 'data 0:0 40755 '));
  }, 180_000);

  // The classic builder has no heredocs: the file BuildKit would write is checked as such.
  it('builds a COPY heredoc to the file BuildKit writes: its bytes, mode and owner', async () => {
    const body = '#!/bin/sh\necho "it\'s $1" \\\n';
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

  it("downloads an ADD --checksum URL through the image's wget, and fails a step whose download does not match", async () => {
    const payload = 'tool v1\n';
    const server = createServer((_req, res) => res.end(payload));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    // The host's loopback: a sandbox sharing the host's network, as OBuilder's (network host).
    const sharedStore = parseStoreSpec(`rsync:${join(dir, 'store-shared')}`);
    const shared = await Builder.open({
      store: sharedStore,
      sandbox: createSandbox('runc', { stateDir: join(dir, 'state-shared'), hostNetwork: 'shared' }),
      fetcher: new OciLayoutFetcher(layout()),
      dbPath: join(dir, 'store-shared', 'db.sqlite'),
      secretKey: 'test-key',
    });
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dl/tool.txt`;
      const sha = createHash('sha256').update(payload).digest('hex');
      const images = await readBaseImages(new OciLayoutFetcher(layout()), [BASE]);
      const good = importDockerfile(`FROM ${BASE}\nADD --checksum=sha256:${sha} --chown=user:user ${url} /opt/\n`, { images }).spec;
      const id = await shared.build(good, { contextDir: context(), log: () => undefined });
      const [text, st] = await sharedStore.withRootfs(
        id,
        async (r) => [await readFile(join(r, 'opt/tool.txt'), 'utf8'), await lstat(join(r, 'opt/tool.txt'))] as const,
      );
      expect(text).toBe(payload);
      expect(st).toMatchObject({ uid: 1000, gid: 1000, mode: 0o100600 });
      const bad = importDockerfile(`FROM ${BASE}\nADD --checksum=sha256:${'0'.repeat(64)} ${url} /opt/tool.txt\n`, { images }).spec;
      await expect(shared.build(bad, { contextDir: context(), log: () => undefined })).rejects.toThrow(/failed: the command exited with code 1$/);
    } finally {
      shared.close();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 120_000);

  it.each(Object.keys(DOCKERFILES))(
    '%s',
    async (name) => {
      const { id, cairn: cairnFiles, docker: dockerFiles } = await buildBoth(name, DOCKERFILES[name]!, context());
      if (name === 'two stages') {
        expect(dockerFiles).toContainEqual(expect.stringMatching(/^srv\/app\/dist\/lib\/a 1000:1000 /));
        expect(cairnFiles).toEqual(dockerFiles.map((line) => (line.startsWith('srv/app/dist/') ? relisted(line, { owner: '0:0' }) : line)));
      } else expect(cairnFiles).toEqual(dockerFiles);
      // The defaults took effect: the RUN ran as the image's user, in its WorkingDir.
      if (name === 'image defaults') {
        expect(cairnFiles).toContainEqual(expect.stringMatching(/^srv\/app\/uid\.txt 1000:1000 /));
        expect(await store.withRootfs(id, (r) => readFile(join(r, 'srv/app/pwd.txt'), 'utf8'))).toBe('/srv/app\n');
      }
    },
    180_000,
  );
});
