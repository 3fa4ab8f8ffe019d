#!/usr/bin/env node
/**
 * `node dist/main.js`: the spec-compiler from the environment. CAIRN_NATS (and
 * CAIRN_NATS_USER / _PASSWORD / _INBOX) reach the bus, CAIRN_HTTP_PORT serves /healthz and
 * /metrics, CAIRN_FETCHER names where base images are resolved (`registry:URL`,
 * `oci:PATH`, `docker`), defaulting to the machine config's `fetcher` as `cairn build`
 * does, so that the compiler pins the very images the workers will fetch.
 */
import { readFile } from 'node:fs/promises';
import { parseFetcherSpec } from '@cairn/fetcher';
import { startSpecCompiler } from './spec-compiler.js';

const CONFIG_FILE = process.env.CAIRN_CONFIG ?? '/var/lib/cairn/cairn.json';

async function configuredFetcher(): Promise<string> {
  if (process.env.CAIRN_FETCHER) return process.env.CAIRN_FETCHER;
  try {
    const config = JSON.parse(await readFile(CONFIG_FILE, 'utf8')) as { fetcher?: unknown };
    if (typeof config.fetcher === 'string') return config.fetcher;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`cannot read the machine config ${CONFIG_FILE}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return 'docker';
}

try {
  const fetcher = parseFetcherSpec(await configuredFetcher(), process.env.CAIRN_PLATFORM ? { platform: process.env.CAIRN_PLATFORM } : {});
  const service = await startSpecCompiler({ fetcher });
  console.log(JSON.stringify({ service: 'spec-compiler', fetcher: fetcher.kind, http: service.httpUrl, message: 'ready' }));
} catch (e) {
  console.error(`spec-compiler: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
