import type { RunConfig } from './sandbox.js';

/**
 * The OCI runtime configuration (a bundle's config.json) for one step, as runc and crun
 * read it. Pure: the caller has already chosen where the bundle's files live.
 *
 * The container gets OBuilder's isolation: its own pid, ipc, uts and mount namespaces,
 * a fresh network namespace with only loopback unless the step asked for
 * `(network host)`, a reduced capability set, the masked and read-only /proc paths of
 * `runc spec`, and a generated /etc/hosts that names the hostname.
 */
export interface OciConfigInput {
  /** Absolute path of the root filesystem. */
  readonly rootfs: string;
  /** Generated hosts file, bind-mounted read-only at /etc/hosts. */
  readonly hostsFile: string;
  /** One file per `config.secrets` entry, same order, written outside the rootfs. */
  readonly secretFiles: readonly string[];
  /** Answer sync system calls with success without doing them (see syncSkippingSeccomp). */
  readonly fastSync: boolean;
  /** Node's `process.arch` of the host: it picks the seccomp architectures. */
  readonly arch: string;
}

/** A step asks for something this sandbox cannot give; the message says what. */
export class UnsupportedConfigError extends Error {
  override readonly name = 'UnsupportedConfigError';
}

export interface OciMount {
  readonly destination: string;
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

export interface OciSeccomp {
  readonly defaultAction: 'SCMP_ACT_ALLOW';
  readonly architectures?: readonly string[];
  readonly syscalls: readonly { readonly names: readonly string[]; readonly action: 'SCMP_ACT_ERRNO'; readonly errnoRet: number }[];
}

export interface OciConfig {
  readonly ociVersion: string;
  readonly process: {
    readonly terminal: false;
    readonly user: { readonly uid: number; readonly gid: number };
    readonly args: readonly string[];
    readonly env: readonly string[];
    readonly cwd: string;
    readonly capabilities: Readonly<Record<'bounding' | 'effective' | 'inheritable' | 'permitted', readonly string[]>>;
    readonly rlimits: readonly { readonly type: string; readonly hard: number; readonly soft: number }[];
    readonly noNewPrivileges: false;
  };
  readonly root: { readonly path: string; readonly readonly: false };
  readonly hostname: string;
  readonly mounts: readonly OciMount[];
  readonly linux: {
    readonly namespaces: readonly { readonly type: string }[];
    readonly maskedPaths: readonly string[];
    readonly readonlyPaths: readonly string[];
    readonly seccomp?: OciSeccomp;
  };
}

/**
 * Docker's default set: what root may still do inside (no mount, ptrace, module loading,
 * clock setting or CAP_SYS_RAWIO). A non-root step user loses them on exec anyway (no ambient set); the
 * bounding set caps what a setuid program such as `sudo` can regain.
 */
export const CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
] as const;

/** OBuilder's limit; tools that close every possible descriptor crawl under the million-wide limits of modern hosts. */
const NOFILE = 1024;

// The lists `runc spec` writes: kernel interfaces that leak host details or let root
// poke at the host even from inside a pid namespace.
const MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

const SYNC_CALLS = ['fsync', 'fdatasync', 'msync', 'sync', 'syncfs', 'sync_file_range'];

// A filter on the native architecture alone would let a 32-bit binary make the same calls
// through the compat entry points; libseccomp wants every ABI the kernel accepts listed.
const SECCOMP_ARCHES: Readonly<Record<string, readonly string[]>> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
};

export function ociConfig(config: RunConfig, input: OciConfigInput): OciConfig {
  const hostNetwork = networkIsHost(config.network);
  if (config.user.kind !== 'unix') {
    throw new UnsupportedConfigError(`the runc sandbox runs Unix users only (uid and gid); the Windows user "${config.user.name}" needs the docker sandbox`);
  }
  if (input.secretFiles.length !== config.secrets.length) {
    throw new Error(`ociConfig: ${config.secrets.length} secrets but ${input.secretFiles.length} secret files`);
  }
  for (const target of [...config.mounts.map((m) => m.dst), ...config.secrets.map((s) => s.target)]) {
    if (!target.startsWith('/')) throw new UnsupportedConfigError(`mount target "${target}" must be an absolute path`);
  }
  const caps = [...CAPABILITIES];
  const seccomp = input.fastSync ? syncSkippingSeccomp(input.arch) : undefined;
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: config.user.uid, gid: config.user.gid },
      args: [...config.argv],
      env: config.env.map(([k, v]) => `${k}=${v}`),
      cwd: config.cwd,
      capabilities: { bounding: caps, effective: caps, inheritable: caps, permitted: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: NOFILE, soft: NOFILE }],
      noNewPrivileges: false,
    },
    root: { path: input.rootfs, readonly: false },
    hostname: config.hostname,
    mounts: [
      ...systemMounts(),
      bindMount('/etc/hosts', input.hostsFile, true),
      ...(hostNetwork ? [bindMount('/etc/resolv.conf', '/etc/resolv.conf', true)] : []),
      ...config.mounts.map((m) => bindMount(m.dst, m.src, m.readonly ?? false)),
      // After the caches, so that a secret inside a cache directory is not hidden by it.
      ...config.secrets.map((s, i) => bindMount(s.target, input.secretFiles[i]!, true)),
    ],
    linux: {
      namespaces: ['pid', 'ipc', 'uts', 'mount', ...(hostNetwork ? [] : ['network'])].map((type) => ({ type })),
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      ...(seccomp ? { seccomp } : {}),
    },
  };
}

/** The contents of the generated /etc/hosts, so that the hostname resolves offline. */
export function hostsFile(hostname: string): string {
  return `127.0.0.1 localhost ${hostname}\n`;
}

function networkIsHost(network: readonly string[]): boolean {
  if (network.length === 0) return false;
  if (network.length === 1 && network[0] === 'host') return true;
  const named = network.filter((n) => n !== 'host');
  throw new UnsupportedConfigError(`the runc sandbox only supports (network host); ${named.join(' ') || network.join(' ')} needs a backend with named networks`);
}

/**
 * A build step's snapshot is published atomically once the step has finished, and a
 * crash throws the unfinished snapshot away, so the durability each fsync buys is wasted
 * work; on btrfs or with package managers that fsync every file it dominates install
 * times. ERRNO with errnoRet 0 makes each call return success without doing anything.
 */
export function syncSkippingSeccomp(arch: string): OciSeccomp {
  const architectures = SECCOMP_ARCHES[arch];
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    ...(architectures ? { architectures } : {}),
    syscalls: [{ names: SYNC_CALLS, action: 'SCMP_ACT_ERRNO', errnoRet: 0 }],
  };
}

function systemMounts(): OciMount[] {
  const mount = (destination: string, type: string, source: string, options: string[]) => ({ destination, type, source, options });
  return [
    mount('/proc', 'proc', 'proc', ['nosuid', 'noexec', 'nodev']),
    mount('/dev', 'tmpfs', 'tmpfs', ['nosuid', 'strictatime', 'mode=755', 'size=65536k']),
    mount('/dev/pts', 'devpts', 'devpts', ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5']),
    mount('/dev/shm', 'tmpfs', 'shm', ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k']),
    mount('/dev/mqueue', 'mqueue', 'mqueue', ['nosuid', 'noexec', 'nodev']),
    mount('/sys', 'sysfs', 'sysfs', ['nosuid', 'noexec', 'nodev', 'ro']),
  ];
}

function bindMount(destination: string, source: string, readonly: boolean): OciMount {
  // rprivate: a mount made later on the host must not propagate into a running step.
  const options = ['rbind', 'rprivate', 'nosuid', 'nodev'];
  return { destination, type: 'bind', source, options: readonly ? [...options, 'ro'] : options };
}
