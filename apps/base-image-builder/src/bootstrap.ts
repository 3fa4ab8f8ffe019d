/**
 * An image's first root filesystem, made on the machine the service runs on (there is
 * no image yet for a job to start from): busybox-static with an applet link each, or
 * `debootstrap`. The result is published as the repository's `bootstrap-<digest>` tag
 * and the image's layers run as a cluster job on top of it.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Bootstrap } from './matrix/matrix.js';

const run = promisify(execFile);
const BUSYBOX = '/usr/bin/busybox';

/** Fills the empty directory `rootfs` as `bootstrap` says. */
export async function bootstrapRootfs(bootstrap: Bootstrap, rootfs: string, log: (line: string) => void): Promise<void> {
  await chmod(rootfs, 0o755);
  switch (bootstrap.kind) {
    case 'busybox-static':
      return busyboxRootfs(rootfs);
    case 'debootstrap':
      log(`debootstrap --variant=${bootstrap.variant} ${bootstrap.suite} from ${bootstrap.mirror}`);
      await run('debootstrap', [`--variant=${bootstrap.variant}`, bootstrap.suite, rootfs, bootstrap.mirror], { maxBuffer: 64 * 1024 * 1024 });
      return;
  }
}

/** busybox-static from the Debian package, root and user 1000, a world-writable /tmp. */
async function busyboxRootfs(dir: string): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await copyFile(BUSYBOX, join(dir, 'bin/busybox'));
  await chmod(join(dir, 'bin/busybox'), 0o755);
  const { stdout } = await run(BUSYBOX, ['--list']);
  for (const applet of stdout.split('\n')) if (applet !== '' && applet !== 'busybox') await symlink('busybox', join(dir, 'bin', applet));
  await mkdir(join(dir, 'etc'));
  await writeFile(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n');
  await writeFile(join(dir, 'etc/group'), 'root:x:0:\nuser:x:1000:\n');
  await mkdir(join(dir, 'root'));
  await mkdir(join(dir, 'tmp'));
  await chmod(join(dir, 'tmp'), 0o1777);
}
