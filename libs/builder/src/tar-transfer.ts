import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { pack as tarPack, type Headers, type Pack } from 'tar-stream';
import type { Manifest } from '@cairn/hashing';
import type { User } from '@cairn/spec';

/**
 * The tar stream a `copy` step feeds to `tar -xf -` inside the sandbox, laid out as
 * OBuilder's tar_transfer does: with a destination ending in `/`, each source lands
 * inside it under its own base name (`.` means the directory's contents); otherwise the
 * single source becomes the destination. Everything is owned by the step's user; files
 * are 0755 when any execute bit is set and 0644 otherwise, directories 0755; symlinks
 * are copied as symlinks. Long names go out as PAX headers.
 */
export function copyTarStream(srcDir: string, items: readonly Manifest[], dst: string, user: User): Readable {
  const pack = tarPack();
  const owner = user.kind === 'unix' ? { uid: user.uid, gid: user.gid } : { uid: 0, gid: 0, uname: user.name };
  const target = dst.replace(/^\/+/, '');
  const send = async () => {
    if (dst.endsWith('/')) {
      for (const item of items) await sendItem(pack, srcDir, item, joinPath(target, baseName(item.path)), owner);
    } else {
      await sendItem(pack, srcDir, items[0]!, target, owner);
    }
    pack.finalize();
  };
  send().catch((e: Error) => pack.destroy(e));
  return pack;
}

type Owner = Pick<Headers, 'uid' | 'gid' | 'uname'>;

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Joins tar member names, dropping empty components (a copy of `.` adds none). */
function joinPath(dir: string, name: string): string {
  return [dir.replace(/\/+$/, ''), name].filter((p) => p !== '').join('/');
}

async function sendItem(pack: Pack, srcDir: string, item: Manifest, name: string, owner: Owner): Promise<void> {
  const source = join(srcDir, item.path);
  const stat = await lstat(source);
  const mtime = stat.mtime;
  switch (item.kind) {
    case 'file': {
      const mode = stat.mode & 0o111 ? 0o755 : 0o644;
      const entry = pack.entry({ name, type: 'file', size: stat.size, mode, mtime, ...owner });
      await pipeline(createReadStream(source), entry);
      return;
    }
    case 'symlink':
      await addEntry(pack, { name, type: 'symlink', linkname: item.target, mode: 0o777, mtime, ...owner });
      return;
    case 'dir':
      if (name !== '') await addEntry(pack, { name: `${name}/`, type: 'directory', mode: 0o755, mtime, ...owner });
      for (const child of item.children) await sendItem(pack, srcDir, child, joinPath(name, baseName(child.path)), owner);
  }
}

function addEntry(pack: Pack, header: Headers): Promise<void> {
  return new Promise((resolve, reject) => pack.entry(header, (err) => (err ? reject(err) : resolve())));
}
