import { chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostsFile, type OciConfig } from './oci-config.js';
import type { RunConfig } from './sandbox.js';

/**
 * An OCI bundle: the directory `runc run --bundle` reads. Besides config.json it holds
 * the files the container bind-mounts (hosts, secrets), so that none of them is ever
 * written into the root filesystem that becomes the step's snapshot.
 */
export interface BundlePaths {
  readonly dir: string;
  readonly hostsFile: string;
  readonly secretFiles: readonly string[];
}

export function bundlePaths(dir: string, secrets: number): BundlePaths {
  return {
    dir,
    hostsFile: join(dir, 'hosts'),
    secretFiles: Array.from({ length: secrets }, (_, i) => join(dir, `secret-${i}`)),
  };
}

export async function writeBundle(paths: BundlePaths, oci: OciConfig, config: RunConfig): Promise<void> {
  await makeBundleDir(paths.dir);
  await writeFile(join(paths.dir, 'config.json'), JSON.stringify(oci, null, 2));
  // Every user of the step resolves names, so this one is readable by all.
  await writeFile(paths.hostsFile, hostsFile(config.hostname), { mode: 0o444 });
  const { uid, gid } = oci.process.user;
  for (const [i, secret] of config.secrets.entries()) {
    const file = paths.secretFiles[i]!;
    await writeFile(file, secret.value, { mode: 0o400 });
    // Only the step's user may read it, as with Docker's secret mounts.
    await chown(file, uid, gid);
  }
}

/**
 * Another process's sandbox init removes the bundles folder when it finds it empty,
 * which can fall between the creation of the folder and of this bundle in it: try again.
 */
async function makeBundleDir(dir: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt === 10) throw e;
    }
  }
}
