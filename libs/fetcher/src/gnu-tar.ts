// execa is loaded on first use: importing it costs every `cairn` start ~100 ms, and a
// fully cached build runs no command at all.
const loadExeca = () => import('execa');
import { FetchError } from './fetcher.js';

/**
 * The `tar` command Cairn's fetchers unpack layers with. GNU tar, run as root, is what
 * restores ownership, modes, setuid bits, device nodes, hard links and file capabilities
 * faithfully; Node's fs cannot make device nodes at all.
 *
 * It uses numeric IDs (never the host's /etc/passwd names) and restores extended
 * attributes, so `security.capability` (ping's cap_net_raw) survives.
 */
const COMMON = ['--numeric-owner', '--xattrs', '--xattrs-include=*'];

// Messages in a fixed language, so errors read the same on every machine.
const ENV = { LC_ALL: 'C' };

function failure(what: string, e: unknown): FetchError {
  const detail = isExecaError(e) ? String(e.stderr ?? '').trim() || e.shortMessage : String(e);
  return new FetchError(`${what}: ${detail}`);
}

/**
 * Unpacks an uncompressed tar stream into `dir` with ownership and modes as recorded.
 * Members matching an `exclude` pattern (GNU tar wildcards, matched against any
 * trailing part of a name) are skipped.
 */
export async function extractTar(dir: string, source: AsyncIterable<Uint8Array>, exclude: readonly string[]): Promise<void> {
  const { execa } = await loadExeca();
  const args = ['-x', '-f', '-', '-C', dir, ...COMMON, '--same-owner', '--same-permissions'];
  try {
    await execa('tar', [...args, ...exclude.map((p) => `--exclude=${p}`)], { stdin: source, env: ENV });
  } catch (e) {
    throw failure(`cannot unpack a layer into ${dir}`, e);
  }
}

function isExecaError(e: unknown): e is { stderr?: unknown; shortMessage: string } {
  return e instanceof Error && e.name === 'ExecaError';
}
