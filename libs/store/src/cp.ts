import { runCommand } from './command.js';

// Every `cp` command the store runs.

/**
 * Makes `dst` (which must not exist, or be an empty directory: then `src`'s content goes
 * into it) a copy of the tree `src` with everything `cp -a` keeps. `reflink: 'always'` shares the data extents (and fails where the filesystem
 * cannot); `'auto'` shares them where it can and copies bytes elsewhere.
 */
export async function copyTree(src: string, dst: string, reflink: 'always' | 'auto'): Promise<void> {
  await runCommand('cp', ['-a', `--reflink=${reflink}`, '--no-target-directory', src, dst]);
}
