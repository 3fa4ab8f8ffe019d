import type { Options } from 'execa';

/**
 * Runs an external command and waits for it. execa is loaded on first use: importing it
 * costs every `cairn` start ~100 ms, and a fully cached build runs no command at all.
 */
export async function runCommand(file: string, args: readonly string[], options: Options = {}): Promise<void> {
  const { execa } = await import('execa');
  await execa(file, args, options);
}
