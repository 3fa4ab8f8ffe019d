import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Everything a root filesystem's files are, one line per path, for comparing two trees:
 * type, mode (with setuid and sticky bits), owner, and content or link target.
 * Hard links are shown as the first path of their inode.
 */
export async function describeTree(root: string): Promise<string[]> {
  const lines: string[] = [];
  const inodes = new Map<number, string>();
  const walk = async (rel: string) => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, path));
      const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isDirectory()) {
        lines.push(`${path}/ ${meta}`);
        await walk(path);
      } else if (st.isSymbolicLink()) {
        lines.push(`${path} -> ${await readlink(join(root, path))} ${st.uid}:${st.gid}`);
      } else if (st.nlink > 1 && inodes.has(st.ino)) {
        lines.push(`${path} hardlink to ${inodes.get(st.ino)}`);
      } else {
        inodes.set(st.ino, path);
        const sha = createHash('sha256')
          .update(await readFile(join(root, path)))
          .digest('hex');
        lines.push(`${path} ${meta} ${sha.slice(0, 16)}`);
      }
    }
  };
  await walk('');
  return lines;
}
