import { resolve } from 'node:path';
import { runCommand } from './command.js';

// Every `rsync` command the store runs.

/**
 * Makes `dst` a copy of the directory `src`, keeping hard links, ACLs, xattrs and numeric
 * owners. With `linkDest`, files that are unchanged from those under `linkDest` become
 * hard links to them instead of copies. With `mirror`, what `src` lacks is deleted from
 * `dst`, and files are compared by content, not by rsync's quick check of size and mtime:
 * a step can change a file and set its mtime back (`touch -r`), and that change must not
 * be lost.
 */
export async function rsyncTree(src: string, dst: string, options: { readonly linkDest?: string; readonly mirror?: boolean } = {}): Promise<void> {
  // rsync reads a relative --link-dest from the destination, not from the cwd.
  const link = options.linkDest === undefined ? [] : [`--link-dest=${resolve(options.linkDest)}`];
  const mirror = options.mirror ? ['--delete', '--checksum'] : [];
  await runCommand('rsync', ['-aHAX', '--numeric-ids', ...link, ...mirror, `${src}/`, `${dst}/`]);
}
