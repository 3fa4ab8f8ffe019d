/**
 * A tree as lines to compare with another: one per entry, `path uid:gid mode content`,
 * the content a digest of a file's bytes or a link's target.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Every entry under `root` in name order, depth first; `skip` leaves an entry (and what is under it) out. */
export async function listing(root: string, skip: (path: string) => boolean = () => false, dir = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(root, dir))).sort()) {
    const rel = dir === '' ? name : `${dir}/${name}`;
    if (skip(rel)) continue;
    const st = await lstat(join(root, rel));
    const content = st.isFile()
      ? createHash('sha256')
          .update(await readFile(join(root, rel)))
          .digest('hex')
          .slice(0, 12)
      : st.isSymbolicLink()
        ? await readlink(join(root, rel))
        : '';
    out.push(`${rel} ${st.uid}:${st.gid} ${st.mode.toString(8)} ${content}`);
    if (st.isDirectory()) out.push(...(await listing(root, skip, rel)));
  }
  return out;
}
