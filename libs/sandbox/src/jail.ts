import { runStreaming } from './step-process.js';
import type { RunOptions } from './sandbox.js';
import type { StepLimits } from './step-limits.js';

/** Where the FreeBSD tools are; tests point them at recording shims. */
export interface JailCommands {
  readonly jail: string;
  readonly jexec: string;
  readonly jls: string;
  readonly mount: string;
  readonly umount: string;
  readonly rctl: string;
}

export const FREEBSD_COMMANDS: JailCommands = {
  jail: '/usr/sbin/jail',
  jexec: '/usr/sbin/jexec',
  jls: '/usr/sbin/jls',
  mount: '/sbin/mount',
  umount: '/sbin/umount',
  rctl: '/usr/bin/rctl',
};

/** Paths inside the jail's root filesystem; a FreeBSD base system has all of them. */
const IN_JAIL = { env: '/usr/bin/env', sh: '/bin/sh', chroot: '/usr/sbin/chroot', ifconfig: '/sbin/ifconfig' } as const;

/**
 * `cd` to the step's directory, then replace the shell with the command: jexec has no
 * working-directory option, and the command line itself is passed untouched as "$@".
 */
const CD_THEN_EXEC = 'cd -- "$1" || exit 1; shift; exec "$@"';

export interface JailParams {
  readonly name: string;
  readonly rootfs: string;
  readonly hostname: string;
  readonly hostNetwork: boolean;
}

export interface JexecParams {
  readonly name: string;
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: readonly (readonly [string, string])[];
  readonly uid: number;
  readonly gid: number;
}

/**
 * The FreeBSD commands of the jail sandbox: the only module that invokes jail, jexec, jls,
 * mount and umount. Every method but `jexec` returns the exit status rather than
 * throwing, so that cleanup can go on past a failure and report it at the end.
 */
export class Jail {
  constructor(private readonly commands: JailCommands) {}

  /**
   * `jail -c`: a persistent jail (it outlives its processes until `jail -r`) on the step's
   * root filesystem, with devfs (the default jail ruleset 4) mounted by jail(8) itself.
   * `(network host)`: the host's addresses (`ip4=inherit ip6=inherit`); otherwise `vnet`,
   * a network stack of its own whose only interface is lo0, brought up by the jail's own
   * ifconfig as it starts.
   */
  async create(params: JailParams): Promise<{ exitCode: number; stderr: string }> {
    const network = params.hostNetwork ? ['ip4=inherit', 'ip6=inherit'] : ['vnet', `exec.start=${IN_JAIL.ifconfig} lo0 inet 127.0.0.1/8 up`];
    return this.exec(this.commands.jail, [
      '-c',
      `name=${params.name}`,
      `path=${params.rootfs}`,
      `host.hostname=${params.hostname}`,
      'mount.devfs',
      'persist',
      ...network,
    ]);
  }

  /** `jail -r`: kills every process in the jail, unmounts its devfs and removes it. */
  async remove(name: string): Promise<{ exitCode: number; stderr: string }> {
    return this.exec(this.commands.jail, ['-r', name]);
  }

  /**
   * A step's limits as rctl(8) rules on its jail, `deny`: memory use (memoryuse), processes
   * (maxproc) and CPU (pcpu, percent of one CPU). Needs `kern.racct.enable=1` at boot.
   */
  async limit(name: string, limits: StepLimits): Promise<{ exitCode: number; stderr: string }> {
    const rules = [
      ...(limits.memoryBytes === undefined ? [] : [`memoryuse:deny=${limits.memoryBytes}`]),
      ...(limits.pids === undefined ? [] : [`maxproc:deny=${limits.pids}`]),
      ...(limits.cpus === undefined ? [] : [`pcpu:deny=${Math.max(1, Math.round(limits.cpus * 100))}`]),
    ];
    for (const rule of rules) {
      const added = await this.exec(this.commands.rctl, ['-a', `jail:${name}:${rule}`]);
      if (added.exitCode !== 0) return added;
    }
    return { exitCode: 0, stderr: '' };
  }

  /**
   * `rctl -u jail:NAME`: what the jail uses now, by resource (`maxproc`: its processes);
   * empty when rctl cannot say (the jail is gone).
   */
  async usage(name: string): Promise<ReadonlyMap<string, number>> {
    const { exitCode, stdout } = await this.exec(this.commands.rctl, ['-u', `jail:${name}`]);
    if (exitCode !== 0) return new Map();
    return new Map(
      stdout.split('\n').flatMap((l) => {
        const m = /^(\w+)=(\d+)$/.exec(l.trim());
        return m ? [[m[1]!, Number(m[2])] as const] : [];
      }),
    );
  }

  /** `rctl -r jail:NAME`: the rules outlive the jail otherwise. */
  async unlimit(name: string): Promise<{ exitCode: number; stderr: string }> {
    return this.exec(this.commands.rctl, ['-r', `jail:${name}`]);
  }

  /** The names of the running jails (`jls -N name`, one per line). */
  async list(): Promise<string[]> {
    const { exitCode, stdout, stderr } = await this.exec(this.commands.jls, ['-N', 'name']);
    if (exitCode !== 0) throw new Error(`jls failed (exit ${exitCode}): ${stderr.trim()}`);
    return stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  }

  /** `mount -t nullfs [-o ro] SRC DST`: nullfs is FreeBSD's bind mount, of a directory or of a file. */
  async mountNullfs(src: string, dst: string, readonly: boolean): Promise<{ exitCode: number; stderr: string }> {
    return this.exec(this.commands.mount, ['-t', 'nullfs', ...(readonly ? ['-o', 'ro'] : []), src, dst]);
  }

  /** `umount PATH`, then `umount -f PATH` if something still held it. */
  async unmount(path: string): Promise<{ exitCode: number; stderr: string }> {
    const first = await this.exec(this.commands.umount, [path]);
    if (first.exitCode === 0) return first;
    return this.exec(this.commands.umount, ['-f', path]);
  }

  /**
   * Runs the step in the jail and streams its output (see runStreaming). jexec takes a
   * user by name only (`-u` in the host's password file, `-U` in the jail's), and a step
   * names numeric IDs that need not be in either; so root runs the command directly, and
   * any other user goes through the jail's chroot(8), which takes numeric `-u`/`-g`/`-G`
   * and drops to them (with `/` as the new root, a no-op chroot). The environment is
   * exactly the step's: `env -i K=V...`.
   */
  async jexec(params: JexecParams, options: RunOptions, stop: () => Promise<void>): Promise<void> {
    const asUser =
      params.uid === 0 && params.gid === 0 ? [] : [IN_JAIL.chroot, '-u', String(params.uid), '-g', String(params.gid), '-G', String(params.gid), '/'];
    const argv = [
      this.commands.jexec,
      params.name,
      ...asUser,
      IN_JAIL.env,
      '-i',
      ...params.env.map(([k, v]) => `${k}=${v}`),
      IN_JAIL.sh,
      '-c',
      CD_THEN_EXEC,
      'sh',
      params.cwd,
      ...params.argv,
    ];
    return runStreaming(argv, options, stop);
  }

  private async exec(file: string, args: readonly string[]) {
    // Loaded on first use, as in the runc driver: importing execa is slow.
    const { execa } = await import('execa');
    const { exitCode, stdout, stderr } = await execa(file, args, { stdin: 'ignore', reject: false });
    return { exitCode: exitCode ?? -1, stdout: String(stdout), stderr: String(stderr) };
  }
}
