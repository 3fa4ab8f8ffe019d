import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeOciImage, type ImageConfig, type OciImage } from '@cairn/oci-image';
import { makeBusyboxRootfs } from './rootfs.js';

export const BUSYBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Writes a busybox image (see makeBusyboxRootfs) named `ref` into the OCI layout at
 * `layoutDir`, with PATH set and `sh` as its command. `config` adds to or overrides that.
 */
export async function busyboxImage(layoutDir: string, ref: string, config: ImageConfig = {}): Promise<OciImage> {
  const rootfs = await mkdtemp(join(tmpdir(), 'cairn-busybox-'));
  try {
    // mkdtemp's 0700 would become the image's `/`, shutting out every user but root.
    await chmod(rootfs, 0o755);
    await makeBusyboxRootfs(rootfs);
    return await writeOciImage(layoutDir, ref, [{ rootfs, config: { env: [['PATH', BUSYBOX_PATH]], cmd: ['/bin/sh'], ...config } }]);
  } finally {
    await rm(rootfs, { recursive: true, force: true });
  }
}
