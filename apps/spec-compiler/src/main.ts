#!/usr/bin/env node
/**
 * `node dist/main.js`: the spec-compiler from the environment. CAIRN_NATS (and
 * CAIRN_NATS_USER / _PASSWORD / _INBOX) reach the bus, CAIRN_HTTP_PORT serves /healthz and
 * /metrics, CAIRN_FETCHER names where base images are resolved (`registry:URL`,
 * `oci:PATH`, `docker`), defaulting to the machine config's `fetcher` as `cairn build`
 * does, so that the compiler pins the very images the workers will fetch.
 */
import { fetcherSpecOf, readMachineConfig } from '@cairn/builder';
import { parseFetcherSpec } from '@cairn/fetcher';
import { startSpecCompiler } from './spec-compiler.js';

try {
  const fetcher = parseFetcherSpec(fetcherSpecOf({}, await readMachineConfig()), process.env.CAIRN_PLATFORM ? { platform: process.env.CAIRN_PLATFORM } : {});
  const service = await startSpecCompiler({ fetcher });
  console.log(JSON.stringify({ service: 'spec-compiler', fetcher: fetcher.kind, http: service.httpUrl, message: 'ready' }));
} catch (e) {
  console.error(`spec-compiler: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
