import { execFile } from 'node:child_process';
import { chmod, chown, copyFile, link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const BUSYBOX = '/usr/bin/busybox';

/**
 * Fills `dir` with the smallest root filesystem a step can run in: busybox-static (from
 * the Debian package) with a symlink per applet in /bin, root and an ordinary user 1000
 * in /etc/passwd and /etc/group, and a world-writable /tmp. Nothing else: no /proc, /dev
 * or /etc/hosts, so tests also see what a sandbox adds to a bare image.
 */
export async function makeBusyboxRootfs(dir: string): Promise<void> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  await copyFile(BUSYBOX, join(bin, 'busybox'));
  await chmod(join(bin, 'busybox'), 0o755);
  const { stdout } = await promisify(execFile)(BUSYBOX, ['--list']);
  for (const applet of stdout.split('\n')) {
    if (applet !== '' && applet !== 'busybox') await symlink('busybox', join(bin, applet));
  }
  await mkdir(join(dir, 'etc'));
  await writeFile(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n');
  await writeFile(join(dir, 'etc/group'), 'root:x:0:\nuser:x:1000:\n');
  await mkdir(join(dir, 'tmp'));
  // mkdir's mode goes through the umask; the sticky bit must be set explicitly anyway.
  await chmod(join(dir, 'tmp'), 0o1777);
}

/**
 * makeBusyboxRootfs plus the cases an image must carry over faithfully: a home owned by
 * user 1000 with a 0640 file, a setuid binary, an absolute symlink and a hard link.
 */
export async function makeAwkwardRootfs(dir: string): Promise<void> {
  await makeBusyboxRootfs(dir);
  await mkdir(join(dir, 'home/user'), { recursive: true });
  await writeFile(join(dir, 'home/user/notes'), 'mine\n');
  await chmod(join(dir, 'home/user/notes'), 0o640);
  await chown(join(dir, 'home/user/notes'), 1000, 1000);
  await chown(join(dir, 'home/user'), 1000, 1000);
  await mkdir(join(dir, 'usr/bin'), { recursive: true });
  await copyFile(BUSYBOX, join(dir, 'usr/bin/su'));
  await chmod(join(dir, 'usr/bin/su'), 0o4755);
  await symlink('/bin/busybox', join(dir, 'usr/bin/absolute-link'));
  await mkdir(join(dir, 'data'));
  await writeFile(join(dir, 'data/a'), 'shared inode\n');
  await link(join(dir, 'data/a'), join(dir, 'data/b'));
}
