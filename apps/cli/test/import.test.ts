import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/main.js';
import { BUSYBOX_PATH, busyboxImage } from '../../../test/support/images.js';

async function cairn(args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => void (out += s), err: (s) => void (err += s), readStdin: async () => stdin });
  return { code, out, err };
}

const NODE_APP = [
  'ARG NODE=20',
  'FROM node:${NODE}-alpine',
  'WORKDIR /app',
  'COPY --chown=1000:1000 . .',
  'RUN npm ci --omit=dev',
  'EXPOSE 3000',
  'CMD ["node", "server.js"]',
  '',
].join('\n');

describe('cairn import of image metadata', () => {
  it('drops CMD and EXPOSE with one warning each on stderr, and exits 0', async () => {
    const r = await cairn(['import', '-f', '-'], NODE_APP);
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      [
        'cairn: warning: <stdin>:6:1: EXPOSE dropped: it declares the ports of the image, image metadata that changes no file, which a Cairn spec does not record',
        'cairn: warning: <stdin>:7:1: CMD dropped: it sets the default command of the image, image metadata that changes no file, which a Cairn spec does not record',
        '',
      ].join('\n'),
    );
    expect(r.out).toContain('(from node:20-alpine)');
    expect(r.out).not.toContain('3000');
  });

  it('refuses the first of them with --strict, naming its line (exit 1)', async () => {
    const r = await cairn(['import', '-f', '-', '--strict'], NODE_APP);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^cairn: <stdin>:6:1: EXPOSE declares the ports of the image: image metadata/);
  });

  it('puts the warnings in the JSON with --json, and nothing on stderr', async () => {
    const r = await cairn(['import', '-f', '-', '--json'], NODE_APP);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const json = JSON.parse(r.out) as { spec: string; warnings: unknown[] };
    expect(json.spec).toContain('(from node:20-alpine)');
    expect(json.warnings).toEqual([
      { file: '<stdin>', line: 6, column: 1, message: expect.stringMatching(/^EXPOSE dropped/) as unknown },
      { file: '<stdin>', line: 7, column: 1, message: expect.stringMatching(/^CMD dropped/) as unknown },
    ]);
  });

  it('with --image-config FILE writes CMD and EXPOSE there as JSON and says so', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-import-config-'));
    try {
      const file = join(dir, 'image.json');
      const r = await cairn(['import', '-f', '-', '--image-config', file], `${NODE_APP}LABEL a=b\nVOLUME /data\n`);
      expect(r.code, r.err).toBe(0);
      expect(r.err).toBe(
        [
          `cairn: warning: <stdin>:6:1: EXPOSE carried to ${file}: it declares the ports of the image, which \`cairn build --image REF --image-config ${file}\` writes into the image config`,
          `cairn: warning: <stdin>:7:1: CMD carried to ${file}: it sets the default command of the image, which \`cairn build --image REF --image-config ${file}\` writes into the image config`,
          `cairn: warning: <stdin>:8:1: LABEL carried to ${file}: it sets image labels, which \`cairn build --image REF --image-config ${file}\` writes into the image config`,
          'cairn: warning: <stdin>:9:1: VOLUME dropped: it declares a volume of the image, image metadata that changes no file, which a Cairn spec does not record',
          '',
        ].join('\n'),
      );
      expect(await readFile(file, 'utf8')).toBe(
        '{\n  "cmd": [\n    "node",\n    "server.js"\n  ],\n  "labels": {\n    "a": "b"\n  },\n  "exposedPorts": [\n    "3000/tcp"\n  ]\n}\n',
      );
      const strict = await cairn(['import', '-f', '-', '--image-config', file, '--strict'], NODE_APP);
      expect(strict.code, strict.err).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes --build-arg for an ARG before FROM', async () => {
    const r = await cairn(['import', '-f', '-', '--build-arg', 'NODE=22'], NODE_APP);
    expect(r.out).toContain('(from node:22-alpine)');
  });
});

describe('cairn import of COPY wildcards', () => {
  it('lists what they match in --context, names each in the spec, and warns', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-import-'));
    await mkdir(join(dir, 'node_modules', 'x'), { recursive: true });
    for (const f of ['package.json', 'package-lock.json', '.dockerignore', 'node_modules/x/package.json'])
      await writeFile(join(dir, f), f === '.dockerignore' ? 'node_modules\n' : '{}');
    await writeFile(join(dir, 'Dockerfile'), 'FROM node:20\nWORKDIR /app\nCOPY package*.json ./\n');
    const r = await cairn(['import', '-f', join(dir, 'Dockerfile'), '--context', dir]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('(copy (src package-lock.json package.json) (dst ./) (exclude node_modules))');
    expect(r.err).toBe(
      `cairn: warning: ${join(dir, 'Dockerfile')}:3:1: COPY package*.json: the wildcard matches package-lock.json package.json in the build context now, which the spec names; a file added later is copied only once the Dockerfile is imported again\n`,
    );
    const without = await cairn(['import', '-f', join(dir, 'Dockerfile')]);
    expect(without.code).toBe(1);
    expect(without.err).toContain('3:1: COPY package*.json: a wildcard needs the build context to list what it matches (cairn import --context DIR)');
  });
});

/**
 * `--resolve` reads each base image through the fetcher `cairn build` uses (here an OCI
 * layout made by the test): its env, user and group names, WorkingDir and User become
 * literal values in the spec (issue 17).
 */
describe('cairn import --resolve', () => {
  let dir: string;
  let images: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-import-resolve-'));
    images = join(dir, 'images');
    // The image runs as `user` (1000:1000 in its /etc/passwd) in /srv/app, with a TOOL_HOME.
    await busyboxImage(images, 'cairn/app-base:1', {
      env: [
        ['PATH', BUSYBOX_PATH],
        ['TOOL_HOME', '/opt/tool'],
      ],
      workdir: '/srv/app',
      user: 'user',
    });
    await busyboxImage(images, 'cairn/plain:1');
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const DOCKERFILE = [
    'ARG BASE=cairn/app-base:1',
    'FROM cairn/plain:1 AS tools',
    'RUN echo tool > /tool',
    'FROM ${BASE}',
    'ENV PATH=$TOOL_HOME/bin:$PATH',
    'COPY --from=tools --chown=user:user /tool ./',
    'RUN id -u > uid',
    'USER root',
    'RUN pwd > /where',
    '',
  ].join('\n');

  it("starts each stage in the image's WorkingDir as its User, with its env and accounts", async () => {
    const r = await cairn(['import', '-f', '-', '--resolve', '--fetcher', `oci:${images}`], DOCKERFILE);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toBe(`((build tools
        ((from cairn/plain:1)
         (shell /bin/sh -c)
         (run (network host)
              (shell "echo tool > /tool"))))
 (from cairn/app-base:1)
 (workdir /srv/app)
 (user (uid 1000) (gid 1000))
 (env PATH /opt/tool/bin:${BUSYBOX_PATH})
 (copy (from (build tools)) (src /tool) (dst ./))
 (shell /bin/sh -c)
 (run (network host)
      (shell "id -u > uid"))
 (user (uid 0) (gid 0))
 (run (network host)
      (shell "pwd > /where"))
)
`);
  });

  it('without --resolve, says what the image would have told', async () => {
    const r = await cairn(['import', '-f', '-'], DOCKERFILE);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^cairn: <stdin>:5:1: ENV: \$TOOL_HOME is set by no ARG or ENV before it in this stage; Docker would take it from the base image's environment/,
    );
  });

  it('names an image the fetcher does not have', async () => {
    const r = await cairn(['import', '-f', '-', '--resolve', '--fetcher', `oci:${images}`], 'FROM cairn/absent:1\nRUN true\n');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cairn\/absent:1/);
  });
});
