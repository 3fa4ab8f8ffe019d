#!/usr/bin/env node
// Bundles the dashboard's script (app.ts) for browsers into dist/browser/app.js, the
// file view/assets.ts serves. Run by the package's build after tsc, from its folder.
import { build } from 'esbuild';

await build({
  entryPoints: ['browser/app.ts'],
  outfile: 'dist/browser/app.js',
  bundle: true,
  // A classic script (`<script defer>`), not a module.
  format: 'iife',
  target: 'es2020',
  minify: true,
  logLevel: 'warning',
});
