// Every `robocopy` command the store runs: Windows has no `cp -a`. Used by the docker
// store's caches when the daemon's host is Windows.

/**
 * Makes `dst` (an existing directory) an exact copy of `src`: `/MIR` copies the tree and
 * removes what `src` lacks; `/COPY:DATSO` keeps data, attributes, timestamps, ACLs and
 * owners (what Windows containers' users need), `/DCOPY:DAT` the same for directories;
 * `/SL` copies symbolic links as links; `/R:0 /W:0` never retries a failed file (the
 * default waits 30 s a million times); the rest keeps the output to the errors.
 */
export function robocopyMirrorArgs(src: string, dst: string): string[] {
  return [src, dst, '/MIR', '/COPY:DATSO', '/DCOPY:DAT', '/SL', '/R:0', '/W:0', '/NP', '/NFL', '/NDL', '/NJH', '/NJS'];
}

/** robocopy's exit status is a bit set: 1 copied, 2 extra files, 4 mismatches; 8 and up are failures. */
const FAILED = 8;

export async function robocopyMirror(src: string, dst: string, command = 'robocopy'): Promise<void> {
  const { execa } = await import('execa');
  const result = await execa(command, robocopyMirrorArgs(src, dst), { reject: false, stdin: 'ignore' });
  const code = result.exitCode;
  if (code !== undefined && code < FAILED) return;
  const why = code === undefined ? result.message : `exit ${code}: ${code & 16 ? 'fatal error, nothing copied' : 'some files could not be copied'}`;
  const output = `${String(result.stdout)}\n${String(result.stderr)}`.trim();
  throw new Error(`robocopy could not mirror ${src} to ${dst} (${why})${output ? `: ${output}` : ''}`, { cause: result.cause });
}
