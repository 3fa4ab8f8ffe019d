#!/usr/bin/env node
/**
 * `node dist/main.js [--http-host H] [--http-port P]`: the spec-compiler from the
 * environment. CAIRN_NATS and its logins reach the bus (contracts' busFromEnv); the flags
 * or CAIRN_HTTP_HOST/PORT place /livez, /readyz and /metrics (default 127.0.0.1:8081,
 * service-kit's http-listen.ts); CAIRN_FETCHER names where base images are resolved (`registry:URL`,
 * `oci:PATH`, `docker`), defaulting to the machine config's `fetcher` as `cairn build`
 * does, so that the compiler pins the very images the workers will fetch.
 */
import { fetcherSpecOf, readMachineConfig } from '@cairn/machine-config';
import { parseFetcherSpec } from '@cairn/fetcher';
import { settleHttpListen } from '@cairn/service-kit';
import { startSpecCompiler } from './spec-compiler.js';

try {
  const { env } = settleHttpListen('spec-compiler', process.argv.slice(2));
  const fetcher = parseFetcherSpec(fetcherSpecOf({}, await readMachineConfig()), env.CAIRN_PLATFORM ? { platform: env.CAIRN_PLATFORM } : {});
  const service = await startSpecCompiler({ fetcher, env });
  console.log(JSON.stringify({ service: 'spec-compiler', fetcher: fetcher.kind, http: service.httpUrl, message: 'ready' }));
} catch (e) {
  console.error(`spec-compiler: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
