// execa is loaded on first use: importing it costs every `cairn` start ~100 ms, and a
// fully cached build runs no command at all.
const loadExeca = () => import('execa');
import { FetchError } from './fetcher.js';

/**
 * Every `tar` command Cairn's fetchers run. GNU tar, run as root, is what restores
 * ownership, modes, setuid bits, device nodes, hard links and file capabilities
 * faithfully; Node's fs cannot make device nodes at all.
 *
 * Both directions use numeric IDs (never the host's /etc/passwd names) and carry
 * extended attributes, so `security.capability` (ping's cap_net_raw) survives.
 */
const COMMON = ['--numeric-owner', '--xattrs', '--xattrs-include=*'];

// Messages in a fixed language, so errors read the same on every machine.
const ENV = { LC_ALL: 'C' };

function failure(what: string, e: unknown): FetchError {
  const detail = isExecaError(e) ? (String(e.stderr ?? '').trim() || e.shortMessage) : String(e);
  return new FetchError(`${what}: ${detail}`);
}

/**
 * Unpacks an uncompressed tar stream into `dir` with ownership and modes as recorded.
 * Members matching an `exclude` pattern (GNU tar wildcards, matched against any
 * trailing part of a name) are skipped.
 */
export async function extractTar(
  dir: string,
  source: AsyncIterable<Uint8Array>,
  exclude: readonly string[],
): Promise<void> {
  const { execa } = await loadExeca();
  const args = ['-x', '-f', '-', '-C', dir, ...COMMON, '--same-owner', '--same-permissions'];
  try {
    await execa('tar', [...args, ...exclude.map((p) => `--exclude=${p}`)], { stdin: source, env: ENV });
  } catch (e) {
    throw failure(`cannot unpack a layer into ${dir}`, e);
  }
}

/**
 * The tar of `dir`'s contents (members `./...`, sorted by name so that the same tree
 * gives the same bytes) as a stream.
 */
export async function* tarDirectory(dir: string): AsyncGenerator<Buffer> {
  const { execa } = await loadExeca();
  const tar = execa('tar', [...COMMON, '--sort=name', '-C', dir, '-c', '.'], {
    env: ENV,
    buffer: { stdout: false, stderr: true },
  });
  try {
    yield* tar.stdout;
    await tar;
  } catch (e) {
    throw failure(`cannot archive ${dir}`, e);
  } finally {
    // A consumer that stopped early leaves it running; kill() of an exited process is a no-op.
    tar.kill();
    await tar.catch(() => undefined);
  }
}

function isExecaError(e: unknown): e is { stderr?: unknown; shortMessage: string } {
  return e instanceof Error && e.name === 'ExecaError';
}
