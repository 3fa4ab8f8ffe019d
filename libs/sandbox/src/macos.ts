import { runStreaming } from './step-process.js';
import type { RunOptions } from './sandbox.js';

/** Where the macOS tools are; tests point sudo and dscl at recording shims. */
export interface MacosCommands {
  readonly sudo: string;
  readonly dscl: string;
  /** Lists the slot user's processes (no sudo needed): the count a pids limit is checked against. */
  readonly pgrep: string;
  /** The rest run through sudo (or inside the step): only their paths matter here. */
  readonly ln: string;
  readonly rm: string;
  readonly pkill: string;
  readonly env: string;
  readonly sh: string;
  readonly sandboxExec: string;
}

export const MACOS_COMMANDS: MacosCommands = {
  sudo: '/usr/bin/sudo',
  dscl: '/usr/bin/dscl',
  pgrep: '/usr/bin/pgrep',
  ln: '/bin/ln',
  rm: '/bin/rm',
  pkill: '/usr/bin/pkill',
  env: '/usr/bin/env',
  sh: '/bin/sh',
  sandboxExec: '/usr/bin/sandbox-exec',
};

/** As in the jail driver: `cd` to the step's directory, then become the command. */
const CD_THEN_EXEC = 'cd -- "$1" || exit 1; shift; exec "$@"';
/**
 * The same with the step's process limit set first: `ulimit -u` is setrlimit(RLIMIT_NPROC),
 * what launchd's NumberOfProcesses sets for a job. macOS counts it per user, and the slot
 * user is the step's alone, so it counts the step's processes.
 */
const LIMIT_THEN_CD_THEN_EXEC = `ulimit -u "$1" || exit 1; shift; ${CD_THEN_EXEC}`;

export interface RunAsParams {
  readonly user: string;
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: readonly (readonly [string, string])[];
  /** A sandbox-exec(1) profile file that wraps the command, if any. */
  readonly profile?: string;
  /** The most processes the user may have at once (RLIMIT_NPROC), if limited. */
  readonly maxProcesses?: number;
}

export interface Result {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The macOS commands of the macOS sandbox: the only module that invokes sudo and dscl
 * (and, through sudo, ln, rm, pkill, env and sandbox-exec). `sudo -n`: a worker without
 * passwordless sudo fails at once instead of waiting for a password. Every method but
 * `runAs` returns the exit status rather than throwing.
 */
export class Macos {
  constructor(private readonly commands: MacosCommands) {}

  /** The user's uid (`dscl . -read /Users/NAME UniqueID`), or undefined if there is no such user. */
  async uidOf(user: string): Promise<number | undefined> {
    const { exitCode, stdout } = await this.exec(this.commands.dscl, ['.', '-read', `/Users/${user}`, 'UniqueID']);
    const uid = /UniqueID:\s*(\d+)/.exec(stdout)?.[1];
    return exitCode === 0 && uid !== undefined ? Number(uid) : undefined;
  }

  /** Creates the build user as OBuilder's macos.ml does, one `dscl . -create` per attribute. */
  async createUser(user: string, uid: number, gid: number, home: string): Promise<Result> {
    const record = `/Users/${user}`;
    for (const attribute of [
      [],
      ['UserShell', '/bin/bash'],
      ['RealName', user],
      ['UniqueID', String(uid)],
      ['PrimaryGroupID', String(gid)],
      ['NFSHomeDirectory', home],
    ]) {
      const result = await this.sudo([this.commands.dscl, '.', '-create', record, ...attribute]);
      if (result.exitCode !== 0) return result;
    }
    return { exitCode: 0, stdout: '', stderr: '' };
  }

  /** `ln -sfh TARGET PATH`: replaces the link at PATH (never following it) with one to TARGET. */
  async link(target: string, path: string): Promise<Result> {
    return this.sudo([this.commands.ln, '-sfh', target, path]);
  }

  /** `rm -f PATH`, for the links `link` made (without a trailing slash: the link, not what it points at). */
  async unlink(path: string): Promise<Result> {
    return this.sudo([this.commands.rm, '-f', path]);
  }

  /** `pkill -9 -u USER`: every process of the build user. Exit 1 means there was none. */
  async killUser(user: string): Promise<Result> {
    const result = await this.sudo([this.commands.pkill, '-9', '-u', user]);
    return result.exitCode === 1 ? { ...result, exitCode: 0 } : result;
  }

  /**
   * Runs the step as USER and streams its output (see runStreaming):
   * `sudo -n -u USER -i -- env -i K=V... [sandbox-exec -f PROFILE] sh -c '[ulimit -u N;] cd CWD; exec ARGV'`.
   * `-i` gives the user's login context (home directory, login class); `env -i` then
   * leaves exactly the step's environment.
   */
  async runAs(params: RunAsParams, options: RunOptions, stop: () => Promise<void>): Promise<void> {
    const script = params.maxProcesses === undefined ? [CD_THEN_EXEC, 'sh'] : [LIMIT_THEN_CD_THEN_EXEC, 'sh', String(params.maxProcesses)];
    const argv = [
      this.commands.sudo,
      '-n',
      '-u',
      params.user,
      '-i',
      '--',
      this.commands.env,
      '-i',
      ...params.env.map(([k, v]) => `${k}=${v}`),
      ...(params.profile === undefined ? [] : [this.commands.sandboxExec, '-f', params.profile]),
      this.commands.sh,
      '-c',
      ...script,
      params.cwd,
      ...params.argv,
    ];
    return runStreaming(argv, options, stop);
  }

  /** How many processes `user` has now (`pgrep -u USER`, one pid a line; exit 1: none). */
  async processCount(user: string): Promise<number> {
    const { exitCode, stdout } = await this.exec(this.commands.pgrep, ['-u', user]);
    if (exitCode !== 0) return 0;
    return stdout.split('\n').filter((l) => l.trim() !== '').length;
  }

  private async sudo(args: readonly string[]): Promise<Result> {
    return this.exec(this.commands.sudo, ['-n', ...args]);
  }

  private async exec(file: string, args: readonly string[]): Promise<Result> {
    const { execa } = await import('execa');
    const { exitCode, stdout, stderr } = await execa(file, args, { stdin: 'ignore', reject: false });
    return { exitCode: exitCode ?? -1, stdout: String(stdout), stderr: String(stderr) };
  }
}
