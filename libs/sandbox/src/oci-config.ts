import type { RunConfig } from './sandbox.js';
import { remapMappings, type UsernsMode } from './user-namespace.js';

/**
 * The OCI runtime configuration (a bundle's config.json) for one step, as runc and crun
 * read it. Pure: the caller has already chosen where the bundle's files live.
 *
 * The container gets OBuilder's isolation: its own pid, ipc, uts and mount namespaces,
 * a fresh network namespace with only loopback unless the step asked for
 * `(network host)`, a reduced capability set, the masked and read-only /proc paths of
 * `runc spec`, and a generated /etc/hosts that names the hostname; and, beyond
 * OBuilder, a seccomp filter with the effect of Docker's default profile
 * (defaultSeccomp), and with `userns: remap` a user namespace (user-namespace.ts). A `(network host)`
 * step joins the namespace of its user-mode network (`userNetwork`, user-network.ts),
 * or, without one, shares the host's (OBuilder's host networking).
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
  /**
   * `default` (when absent): refuse the system calls Docker's default profile refuses
   * (defaultSeccomp). `unconfined`: no such filter, for a pool of trusted builds that
   * need them (fast-sync's filter still applies).
   */
  readonly seccomp?: SeccompMode;
  /**
   * `remap`: a user namespace of its own, IDs 0-65535 being host IDs 100000-165535; the
   * caller has shifted the owners of the rootfs and the writable mounts (shiftIn).
   * `host` (when absent): the host's IDs.
   */
  readonly userns?: UsernsMode;
  /** The container's cgroup, below the step's own that holds its limits (step-cgroup.ts). */
  readonly cgroupsPath?: string;
  /** Node's `process.arch` of the host: it picks the seccomp architectures. */
  readonly arch: string;
  /**
   * For a `(network host)` step with user-mode networking: the network namespace it
   * joins and the resolv.conf it reads (stepResolvConf). Absent, such a step shares the
   * host's network namespace and /etc/resolv.conf.
   */
  readonly userNetwork?: { readonly netns: string; readonly resolvConf: string };
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

export const SECCOMP_MODES = ['default', 'unconfined'] as const;
export type SeccompMode = (typeof SECCOMP_MODES)[number];

export interface OciSeccompRule {
  readonly names: readonly string[];
  readonly action: 'SCMP_ACT_ERRNO';
  readonly errnoRet: number;
  /** All must hold for the rule to apply (libseccomp ANDs the conditions of one rule). */
  readonly args?: readonly { readonly index: number; readonly value: number; readonly valueTwo: number; readonly op: 'SCMP_CMP_MASKED_EQ' }[];
}

export interface OciSeccomp {
  readonly defaultAction: 'SCMP_ACT_ALLOW';
  readonly architectures?: readonly string[];
  readonly syscalls: readonly OciSeccompRule[];
}

export interface IdMapping {
  readonly containerID: number;
  readonly hostID: number;
  readonly size: number;
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
    readonly namespaces: readonly { readonly type: string; readonly path?: string }[];
    readonly uidMappings?: readonly IdMapping[];
    readonly gidMappings?: readonly IdMapping[];
    readonly maskedPaths: readonly string[];
    readonly readonlyPaths: readonly string[];
    readonly seccomp?: OciSeccomp;
    readonly cgroupsPath?: string;
  };
}

/**
 * Docker's default set: what root may still do inside (no mount, ptrace, module loading,
 * clock setting or CAP_SYS_RAWIO). A non-root step user loses them on exec anyway (no ambient set); the
 * bounding set caps what a setuid program such as `sudo` can regain.
 */
export const CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
] as const;

/** OBuilder's limit; tools that close every possible descriptor crawl under the million-wide limits of modern hosts. */
const NOFILE = 1024;

// The lists `runc spec` writes: kernel interfaces that leak host details or let root
// poke at the host even from inside a pid namespace.
const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/sys/firmware',
  '/proc/scsi',
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
  const userNetwork = hostNetwork ? input.userNetwork : undefined;
  if (config.user.kind !== 'unix') {
    throw new UnsupportedConfigError(`the runc sandbox runs Unix users only (uid and gid); the Windows user "${config.user.name}" needs the docker sandbox`);
  }
  if (input.secretFiles.length !== config.secrets.length) {
    throw new Error(`ociConfig: ${config.secrets.length} secrets but ${input.secretFiles.length} secret files`);
  }
  for (const target of [...config.mounts.map((m) => m.dst), ...config.secrets.map((s) => s.target)]) {
    if (!target.startsWith('/')) throw new UnsupportedConfigError(`mount target "${target}" must be an absolute path`);
  }
  // Without CAP_NET_RAW a step cannot write raw frames to its tap device: slirp4netns
  // would connect a frame addressed to 127.0.0.1 to the host's loopback.
  const caps = userNetwork ? CAPABILITIES.filter((c) => c !== 'CAP_NET_RAW') : [...CAPABILITIES];
  const seccomp = stepSeccomp(input.arch, input.seccomp ?? 'default', input.fastSync);
  const remap = input.userns === 'remap';
  // sysfs may only be mounted by the owner of the network namespace: a user namespace
  // does not own the host's, nor user-mode networking's (made outside it), so it gets a
  // read-only view of the host's /sys instead, as `runc spec --rootless` writes. Recursive:
  // the kernel refuses to bind it alone in a user namespace, since that would uncover what
  // the mounts below it hide; those stay the host's root's, whom the step is not.
  const sysBind = remap && hostNetwork;
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
      ...systemMounts(sysBind),
      bindMount('/etc/hosts', input.hostsFile, true),
      ...(hostNetwork ? [bindMount('/etc/resolv.conf', userNetwork?.resolvConf ?? '/etc/resolv.conf', true)] : []),
      ...config.mounts.map((m) => bindMount(m.dst, m.src, m.readonly ?? false)),
      // After the caches, so that a secret inside a cache directory is not hidden by it.
      ...config.secrets.map((s, i) => bindMount(s.target, input.secretFiles[i]!, true)),
    ],
    linux: {
      namespaces: [
        ...['pid', 'ipc', 'uts', 'mount'].map((type) => ({ type })),
        ...(userNetwork ? [{ type: 'network', path: userNetwork.netns }] : hostNetwork ? [] : [{ type: 'network' }]),
        ...(remap ? [{ type: 'user' }] : []),
      ],
      ...(remap ? { uidMappings: remapMappings(), gidMappings: remapMappings() } : {}),
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      ...(seccomp ? { seccomp } : {}),
      ...(input.cgroupsPath ? { cgroupsPath: input.cgroupsPath } : {}),
    },
  };
}

/** The contents of the generated /etc/hosts, so that the hostname resolves offline. */
export function hostsFile(hostname: string): string {
  return `127.0.0.1 localhost ${hostname}\n`;
}

/** Whether the step asked for `(network host)`; a named network is refused. */
export function networkIsHost(network: readonly string[]): boolean {
  if (network.length === 0) return false;
  if (network.length === 1 && network[0] === 'host') return true;
  const named = network.filter((n) => n !== 'host');
  throw new UnsupportedConfigError(
    `the runc sandbox only supports (network host); ${named.join(' ') || network.join(' ')} needs a backend with named networks`,
  );
}

/** The filter of a step: the default profile's rules, fast-sync's, both, or none. */
export function stepSeccomp(arch: string, mode: SeccompMode, fastSync: boolean): OciSeccomp | undefined {
  const syscalls = [...(mode === 'default' ? defaultSeccomp() : []), ...(fastSync ? syncSkippingSeccomp() : [])];
  if (syscalls.length === 0) return undefined;
  const architectures = SECCOMP_ARCHES[arch];
  return { defaultAction: 'SCMP_ACT_ALLOW', ...(architectures ? { architectures } : {}), syscalls };
}

/**
 * A build step's snapshot is published atomically once the step has finished, and a
 * crash throws the unfinished snapshot away, so the durability each fsync buys is wasted
 * work; on btrfs or with package managers that fsync every file it dominates install
 * times. ERRNO with errnoRet 0 makes each call return success without doing anything.
 */
export function syncSkippingSeccomp(): OciSeccompRule[] {
  return [{ names: SYNC_CALLS, action: 'SCMP_ACT_ERRNO', errnoRet: 0 }];
}

const EPERM = 1;
const ENOSYS = 38;

/**
 * What Docker's default profile refuses, as a deny list: Docker allows a list of calls
 * and refuses the rest, which breaks every new system call until the list learns it;
 * refusing the dangerous ones has the same effect on what a step can do to its host.
 * Unknown names (a call this kernel or libseccomp lacks) are skipped by runc and crun.
 */
const REFUSED_CALLS = [
  // Kernel keyrings are not namespaced: a step could read or fill the host's.
  'add_key',
  'keyctl',
  'request_key',
  // Modules and kernel replacement.
  'init_module',
  'finit_module',
  'delete_module',
  'create_module',
  'query_module',
  'get_kernel_syms',
  'kexec_load',
  'kexec_file_load',
  'reboot',
  // Mounting (the capability is not granted either) and new namespaces, a user namespace
  // above all: inside one a step is root again, with every capability.
  'mount',
  'umount',
  'umount2',
  'pivot_root',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'move_mount',
  'open_tree',
  'mount_setattr',
  'unshare',
  'setns',
  // The host's clock, accounting, quotas, swap and kernel log.
  'settimeofday',
  'stime',
  'clock_settime',
  'clock_adjtime',
  'adjtimex',
  'acct',
  'quotactl',
  'swapon',
  'swapoff',
  'syslog',
  // Kernel interfaces with a history of escapes or host information.
  'bpf',
  'perf_event_open',
  'userfaultfd',
  'open_by_handle_at',
  'lookup_dcookie',
  'fanotify_init',
  'kcmp',
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
  'iopl',
  'ioperm',
  'vm86',
  'vm86old',
  'nfsservctl',
  'uselib',
  'ustat',
  'sysfs',
  '_sysctl',
];

/** clone's flags that make a namespace: refused one by one, as unshare is. */
const NAMESPACE_FLAGS = {
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
};

export function defaultSeccomp(): OciSeccompRule[] {
  return [
    { names: REFUSED_CALLS, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
    // Conditions within one rule are ANDed, so one rule per flag refuses any of them.
    ...Object.values(NAMESPACE_FLAGS).map((flag): OciSeccompRule => ({
      names: ['clone'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
    })),
    // clone3 passes its flags in memory, where a filter cannot look: "not implemented"
    // makes the C library fall back to clone, where it can (what Docker does).
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
  ];
}

function systemMounts(sysBind: boolean): OciMount[] {
  const mount = (destination: string, type: string, source: string, options: string[]) => ({ destination, type, source, options });
  return [
    mount('/proc', 'proc', 'proc', ['nosuid', 'noexec', 'nodev']),
    mount('/dev', 'tmpfs', 'tmpfs', ['nosuid', 'strictatime', 'mode=755', 'size=65536k']),
    mount('/dev/pts', 'devpts', 'devpts', ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5']),
    mount('/dev/shm', 'tmpfs', 'shm', ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k']),
    mount('/dev/mqueue', 'mqueue', 'mqueue', ['nosuid', 'noexec', 'nodev']),
    sysBind
      ? mount('/sys', 'bind', '/sys', ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'])
      : mount('/sys', 'sysfs', 'sysfs', ['nosuid', 'noexec', 'nodev', 'ro']),
  ];
}

function bindMount(destination: string, source: string, readonly: boolean): OciMount {
  // rprivate: a mount made later on the host must not propagate into a running step.
  const options = ['rbind', 'rprivate', 'nosuid', 'nodev'];
  return { destination, type: 'bind', source, options: readonly ? [...options, 'ro'] : options };
}
