#!/usr/bin/env node
// The README's test command: builds every project, typechecks and lints them, runs
// every test, and ends with the one line CI reads: "N passed, N failed".
// The build, typecheck, lint and format check each count as one check in that line.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';

// Cairn runs on Node.js 24. A shell whose PATH finds an older node first (npm found
// through /usr/bin) still gets the tests run on the one tools/install-node.sh installed.
if (Number(process.versions.node.split('.')[0]) < 24) {
  const installed = (() => {
    try {
      return readdirSync('/opt/cairn')
        .filter((d) => d.startsWith('node-v24.'))
        .map((d) => `/opt/cairn/${d}/bin/node`);
    } catch {
      return [];
    }
  })();
  if (installed.length === 0) {
    console.error(`Cairn needs Node.js 24 (this is ${process.version}): run bash tools/setup.sh first`);
    process.exit(1);
  }
  const node = installed.at(-1);
  process.env.PATH = `${dirname(node)}${delimiter}${process.env.PATH}`;
  process.exit(spawnSync(node, process.argv.slice(1), { stdio: 'inherit' }).status ?? 1);
}
console.log(`tests on Node.js ${process.version}`);

const env = { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true', NX_TUI: 'false', FORCE_COLOR: process.env.FORCE_COLOR ?? '0' };
const run = (cmd, args, extraEnv = {}) => spawnSync(cmd, args, { stdio: 'inherit', env: { ...env, ...extraEnv } }).status === 0;

let passed = 0;
let failed = 0;
const check = (name, ok) => {
  if (ok) passed++;
  else {
    failed++;
    console.error(`check failed: ${name}`);
  }
  return ok;
};

const built = check('build', run('npx', ['nx', 'run-many', '-t', 'build', '--outputStyle=stream']));
check('typecheck', run('npx', ['tsc', '-p', 'tsconfig.test.json']));
check('lint', run('npx', ['eslint', '.']));
// Layout is the formatter's (.prettierrc.json); `npm run format` applies it.
check('format', run('npx', ['prettier', '--check', '--log-level', 'warn', '**/*.{ts,mts,js,mjs}']));

if (built) {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-tests-'));
  const summary = join(dir, 'summary.json');
  const vitestOk = run('npx', ['vitest', 'run', ...process.argv.slice(2)], { CAIRN_TEST_SUMMARY: summary });
  try {
    const counts = JSON.parse(readFileSync(summary, 'utf8'));
    passed += counts.passed;
    failed += counts.failed;
    // vitest failing with no failure counted (an unhandled error it reports another way) is one.
    if (!vitestOk && counts.failed === 0) check('vitest exited with success', false);
  } catch {
    check('vitest produced a summary', false);
  }
  rmSync(dir, { recursive: true, force: true });
}

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
