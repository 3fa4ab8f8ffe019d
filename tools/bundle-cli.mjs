#!/usr/bin/env node
// Bundles the `cairn` command into a few files (apps/cli/dist/bundle). Node spends most
// of a short command's life resolving and loading modules; one bundle with lazily loaded
// chunks (the engine, execa) makes a fully cached `cairn build` start about a third faster.
// dockerode (loaded only for the docker fetcher) stays an ordinary dependency.
import { readFileSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('apps/cli/dist/bundle', { recursive: true, force: true });

await build({
  entryPoints: ['apps/cli/src/main.ts'],
  outdir: 'apps/cli/dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  external: ['dockerode'],
  // Bundled CommonJS packages call require(); give them one.
  banner: { js: "import { createRequire as __cairnRequire } from 'node:module'; const require = __cairnRequire(import.meta.url);" },
  define: { __CAIRN_VERSION__: JSON.stringify(JSON.parse(readFileSync('apps/cli/package.json', 'utf8')).version) },
  logLevel: 'warning',
});
