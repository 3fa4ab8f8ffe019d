#!/usr/bin/env node
// Builds the service images with Cairn itself and exports them (issue 14):
//   cairn/service:TAG   infra/images/cairn.spec          (entrypoint node; the service is the command)
//   cairn/worker:TAG    infra/images/cairn-worker.spec
//   cairn/infra:TAG     infra/images/cairn-infra.spec    (Debian's nats-server, PostgreSQL, docker-registry, Prometheus)
//
//   node infra/images/build-images.mjs [--tag T] [--registry HOST:PORT] [--push] [--load]
//                                      [--oci-layout DIR] [--context DIR] [--only NAME]... [-- cairn build flags...]
//
// The build runs as any `cairn build` does (store and fetcher from CAIRN_STORE,
// CAIRN_FETCHER or the machine config; the fetcher must have cairn/debian:bookworm, which
// tools/make-base-images.mjs makes). Prints one JSON line per image:
//   {"name":"service","ref":"HOST:PORT/cairn/service:T","digest":"sha256:...","imageId":"sha256:..."}
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const REPO = join(import.meta.dirname, '../..');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    tag: { type: 'string', default: JSON.parse(readFileSync(join(REPO, 'apps/cli/package.json'), 'utf8')).version },
    registry: { type: 'string' },
    push: { type: 'boolean', default: false },
    load: { type: 'boolean', default: false },
    'oci-layout': { type: 'string' },
    context: { type: 'string' },
    only: { type: 'string', multiple: true },
  },
});
if (values.push && !values.registry) throw new Error('--push needs --registry HOST:PORT');

const NODE = ['--entrypoint', '["/opt/cairn/node/bin/node"]'];
const IMAGES = [
  { name: 'service', spec: 'cairn.spec', flags: [...NODE, '--expose', '8080'] },
  { name: 'worker', spec: 'cairn-worker.spec', flags: NODE },
  // nats-server, PostgreSQL, docker-registry, Prometheus: each compose service names its command.
  { name: 'infra', spec: 'cairn-infra.spec', flags: [] },
];

const context = values.context ?? mkdtempSync(join(tmpdir(), 'cairn-images-context-'));
const run = (args, capture) => {
  const r = spawnSync(process.execPath, args, { cwd: REPO, stdio: ['ignore', capture ? 'pipe' : 2, 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.slice(0, 3).join(' ')} ... exited with ${r.status ?? r.signal}`);
  return r.stdout;
};
try {
  run([join(REPO, 'infra/images/stage-context.mjs'), context]);
  for (const image of IMAGES.filter((i) => !values.only || values.only.includes(i.name))) {
    const ref = `${values.registry ? `${values.registry}/` : ''}cairn/${image.name}:${values.tag}`;
    const out = run(
      [
        join(REPO, 'apps/cli/bin/cairn.js'),
        'build',
        '-f',
        join(REPO, 'infra/images', image.spec),
        context,
        '--json',
        '--image',
        ref,
        ...image.flags,
        '--label',
        `org.opencontainers.image.title=cairn-${image.name}`,
        '--label',
        `org.opencontainers.image.version=${values.tag}`,
        ...(values.push ? ['--push'] : []),
        ...(values.load ? ['--load'] : []),
        ...(values['oci-layout'] ? ['--oci-layout', values['oci-layout']] : []),
        ...positionals,
      ],
      true,
    );
    const { image: exported } = JSON.parse(out);
    console.log(JSON.stringify({ name: image.name, ref: exported.ref, digest: exported.digest, imageId: exported.imageId }));
  }
} finally {
  if (!values.context) rmSync(context, { recursive: true, force: true });
}
