import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { secretDigest } from '@cairn/hashing';
import { UserError } from './cli-error.js';

/**
 * The key for secret digests in step IDs. Every machine that must share cache hits for
 * steps with secrets needs the same key: set CAIRN_SECRET_KEY, or copy the key file.
 * Without either, a random key is made once per user and kept in ~/.cairn.
 */
export async function loadSecretKey(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.CAIRN_SECRET_KEY) return env.CAIRN_SECRET_KEY;
  const file = env.CAIRN_SECRET_KEY_FILE ?? join(env.CAIRN_HOME ?? join(homedir(), '.cairn'), 'secret-digest.key');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot read the secret digest key "${file}": ${String(e)}`);
  }
  const key = randomBytes(32).toString('hex');
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // wx: if another process created it meanwhile, use theirs.
  await writeFile(file, `${key}\n`, { mode: 0o600, flag: 'wx' }).catch(() => undefined);
  return (await readFile(file, 'utf8')).trim();
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
