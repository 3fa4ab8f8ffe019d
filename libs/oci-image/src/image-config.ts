import { OciImageError } from './oci-image-error.js';
import type { Platform } from './vocabulary.js';

/** How a container of the image runs, and for which platform it is: the image config's settings. */
export interface ImageConfig {
  /** `[name, value]` pairs in order; names are unique. */
  readonly env?: readonly (readonly [string, string])[];
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  /** `name`, `uid`, `uid:gid` or `name:group`. */
  readonly user?: string;
  /** An absolute path. */
  readonly workdir?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** `8080/tcp`, `53/udp`, or a bare port (tcp). */
  readonly exposedPorts?: readonly string[];
  readonly stopSignal?: string;
  /** Default: the host's (`amd64` for x64). */
  readonly architecture?: string;
  /** Default `linux`. */
  readonly os?: string;
  readonly variant?: string;
}

const ENV_NAME = /^[^=\0]+$/;
const PORT = /^\d{1,5}(?:\/(?:tcp|udp|sctp))?$/;
const ARCHITECTURES: Readonly<Record<string, string>> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
};

/** The host's platform in OCI terms. */
export function hostPlatform(): Platform {
  return { architecture: ARCHITECTURES[process.arch] ?? process.arch, os: 'linux' };
}

export function platformOf(config: ImageConfig): Platform {
  const host = hostPlatform();
  return {
    architecture: config.architecture ?? host.architecture,
    os: config.os ?? host.os,
    ...(config.variant ? { variant: config.variant } : {}),
  };
}

/** `linux/amd64`, `linux/arm/v7`. */
export function platformName(p: Platform): string {
  return [p.os, p.architecture, ...(p.variant ? [p.variant] : [])].join('/');
}

/** Throws an OciImageError naming the setting that is wrong. */
export function checkImageConfig(config: ImageConfig, where: string): void {
  const bad = (what: string) => new OciImageError(`${where}: ${what}`);
  const seen = new Set<string>();
  for (const [name] of config.env ?? []) {
    if (!ENV_NAME.test(name)) throw bad(`env name ${JSON.stringify(name)} is empty or has "=" in it`);
    if (seen.has(name)) throw bad(`env ${name} is set twice`);
    seen.add(name);
  }
  if (config.workdir !== undefined && !config.workdir.startsWith('/')) {
    throw bad(`workdir must be an absolute path, not ${JSON.stringify(config.workdir)}`);
  }
  if (config.user !== undefined && !/^[^:\s]+(?::[^:\s]+)?$/.test(config.user)) {
    throw bad(`user must be NAME, UID, or USER:GROUP, not ${JSON.stringify(config.user)}`);
  }
  for (const port of config.exposedPorts ?? []) {
    if (!PORT.test(port)) throw bad(`exposed port must be PORT or PORT/tcp|udp|sctp, not ${JSON.stringify(port)}`);
  }
  for (const list of ['entrypoint', 'cmd'] as const) {
    const value = config[list];
    if (value !== undefined && value.some((arg) => typeof arg !== 'string')) throw bad(`${list} must be a list of strings`);
  }
}

/** What an image built on a parent image takes from the parent's config document. */
export interface ParentConfig {
  /** The parent's run settings (`config`): Env, Cmd, User, ... as the parent has them. */
  readonly run: Readonly<Record<string, unknown>>;
  readonly diffIds: readonly string[];
  readonly history: readonly unknown[];
}

const NO_PARENT: ParentConfig = { run: {}, diffIds: [], history: [] };

/**
 * The OCI image config document (image-spec config.md). Keys come in a fixed order and
 * `created` is the layer's fixed time, so the same settings always give the same bytes.
 * On a `parent`, the parent's run settings stay where `config` does not set them, and
 * its layers and history come before this image's.
 */
export function imageConfigDocument(
  config: ImageConfig,
  diffIds: readonly string[],
  created: string,
  parent: ParentConfig = NO_PARENT,
): Record<string, unknown> {
  const platform = platformOf(config);
  const run: Record<string, unknown> = { ...parent.run };
  if (config.user !== undefined) run.User = config.user;
  if (config.exposedPorts?.length) {
    run.ExposedPorts = Object.fromEntries([...config.exposedPorts].sort().map((p) => [p.includes('/') ? p : `${p}/tcp`, {}]));
  }
  if (config.env?.length) run.Env = config.env.map(([name, value]) => `${name}=${value}`);
  if (config.entrypoint) run.Entrypoint = [...config.entrypoint];
  if (config.cmd) run.Cmd = [...config.cmd];
  if (config.workdir !== undefined) run.WorkingDir = config.workdir;
  if (config.labels && Object.keys(config.labels).length > 0) {
    run.Labels = Object.fromEntries(Object.entries(config.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
  if (config.stopSignal !== undefined) run.StopSignal = config.stopSignal;
  return {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: run,
    rootfs: { type: 'layers', diff_ids: [...parent.diffIds, ...diffIds] },
    history: [...parent.history, { created, created_by: 'cairn' }],
  };
}
