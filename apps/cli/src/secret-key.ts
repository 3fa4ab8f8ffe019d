import { readFile } from 'node:fs/promises';
import { secretDigest } from '@cairn/hashing';
import { UserError } from './cli-error.js';

/** The secret digest key (libs/builder loadSecretKey); a problem reading it is a ConfigError, the user's to fix. */
export async function loadSecretKey(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  // Loaded here, not at the top: commands that never need the key must not load the engine.
  const { loadSecretKey: loadBuilderSecretKey } = await import('@cairn/builder');
  return loadBuilderSecretKey(env);
}

/** `--secret ID:FILE` options: each file's bytes by secret ID. */
export async function readSecretFiles(specs: readonly string[]): Promise<Map<string, Uint8Array>> {
  const values = new Map<string, Uint8Array>();
  for (const spec of specs) {
    const colon = spec.indexOf(':');
    if (colon <= 0 || colon === spec.length - 1) throw new UserError(`--secret takes ID:FILE, not "${spec}"`);
    const id = spec.slice(0, colon);
    const path = spec.slice(colon + 1);
    if (values.has(id)) throw new UserError(`--secret ${id} is given twice`);
    try {
      values.set(id, await readFile(path));
    } catch (e) {
      throw new UserError(`cannot read secret "${id}" from "${path}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  return values;
}

/** `--secret ID:FILE` options, as keyed digests by ID. The values themselves go no further. */
export async function secretDigests(specs: readonly string[]): Promise<Map<string, string>> {
  const values = await readSecretFiles(specs);
  if (values.size === 0) return new Map();
  const key = await loadSecretKey();
  return new Map([...values].map(([id, value]) => [id, secretDigest(key, value)]));
}
