import { readFileSync } from 'node:fs';

// The bundle has the version written in by tools/bundle-cli.mjs; run from source (tests,
// tsc's output) it is read from the package, which is one level above src/ and dist/ alike.
declare const __CAIRN_VERSION__: string | undefined;

export const VERSION: string =
  typeof __CAIRN_VERSION__ === 'string'
    ? __CAIRN_VERSION__
    : (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
