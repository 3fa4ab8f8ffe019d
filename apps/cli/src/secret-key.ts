import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { secretDigest } from '@cairn/hashing';
import { UserError } from './cli-error.js';
import { readInput, type Io } from './io.js';

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

/** `--secret ID:FILE` options, as digests by ID. The values themselves go no further. */
export async function secretDigests(io: Io, specs: readonly string[]): Promise<Map<string, string>> {
  const digests = new Map<string, string>();
  if (specs.length === 0) return digests;
  const key = await loadSecretKey();
  for (const spec of specs) {
    const colon = spec.indexOf(':');
    if (colon <= 0 || colon === spec.length - 1) throw new UserError(`--secret takes ID:FILE, not "${spec}"`);
    const id = spec.slice(0, colon);
    if (digests.has(id)) throw new UserError(`--secret ${id} is given twice`);
    digests.set(id, secretDigest(key, await readInput(io, spec.slice(colon + 1), `secret "${id}"`)));
  }
  return digests;
}
