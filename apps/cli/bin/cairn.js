#!/usr/bin/env node
// The `cairn` command: runs the bundle (tools/bundle-cli.mjs). A fully cached build is over
// in a few tens of milliseconds, so start-up is most of what a user waits for: Node's
// compile cache keeps the bundle's compiled code between runs, and `--version` answers
// before anything is loaded.
import { readFileSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${JSON.parse(readFileSync(join(import.meta.dirname, '../package.json'), 'utf8')).version}\n`);
} else {
  const cacheHome = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  enableCompileCache(process.env.CAIRN_COMPILE_CACHE || join(cacheHome, 'cairn', 'node-compile-cache'));
  const { main } = await import('../dist/bundle/main.js');
  process.exitCode = await main(args);
}
