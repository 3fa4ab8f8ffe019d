import { chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostsFile, type OciConfig } from './oci-config.js';
import { hostIdOf } from './user-namespace.js';
import type { RunConfig } from './sandbox.js';

/**
 * An OCI bundle: the directory `runc run --bundle` reads. Besides config.json it holds
 * the files the container bind-mounts (hosts, resolv.conf, secrets), so that none of them is ever
 * written into the root filesystem that becomes the step's snapshot.
 */
export interface BundlePaths {
  readonly dir: string;
  readonly hostsFile: string;
  /** Written only for a step with user-mode networking (stepResolvConf). */
  readonly resolvConf: string;
  readonly secretFiles: readonly string[];
}

export function bundlePaths(dir: string, secrets: number): BundlePaths {
  return {
    dir,
    hostsFile: join(dir, 'hosts'),
    resolvConf: join(dir, 'resolv.conf'),
    secretFiles: Array.from({ length: secrets }, (_, i) => join(dir, `secret-${i}`)),
  };
}

export async function writeBundle(paths: BundlePaths, oci: OciConfig, config: RunConfig, resolvConf?: string): Promise<void> {
  await makeBundleDir(paths.dir);
  // A step in a user namespace reaches its mounts' sources as its own root, a host
  // user with no right to enter a root-only directory: the bundle becomes that root's.
  const { uidMappings, gidMappings } = oci.linux;
  if (uidMappings) await chown(paths.dir, hostIdOf(0, uidMappings), hostIdOf(0, gidMappings));
  await writeFile(join(paths.dir, 'config.json'), JSON.stringify(oci, null, 2));
  // Every user of the step resolves names, so these are readable by all.
  await writeFile(paths.hostsFile, hostsFile(config.hostname), { mode: 0o444 });
  if (resolvConf !== undefined) await writeFile(paths.resolvConf, resolvConf, { mode: 0o444 });
  const uid = hostIdOf(oci.process.user.uid, uidMappings);
  const gid = hostIdOf(oci.process.user.gid, gidMappings);
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
export async function makeBundleDir(dir: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt === 10) throw e;
    }
  }
}
