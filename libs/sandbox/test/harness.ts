import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { onTestFinished } from 'vitest';
import { makeBusyboxRootfs } from '../../../test/support/rootfs.js';
import { RuncSandbox, type RunConfig, type RunOptions, type RuncSandboxOptions } from '../src/index.js';

/** Every test of a real sandbox runs once per runtime. */
export const RUNTIMES = ['runc', 'crun'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export const ROOT = { kind: 'unix', uid: 0, gid: 0 } as const;
export const USER = { kind: 'unix', uid: 1000, gid: 1000 } as const;

/** A busybox root filesystem and a sandbox with its own state dir, removed after the test. */
export interface Scratch {
  readonly dir: string;
  readonly rootfs: string;
  readonly stateDir: string;
  readonly sandbox: RuncSandbox;
  /** Runs a /bin/sh script as root, without network; resolves to its output. */
  run(script: string, config?: Partial<RunConfig>, options?: Partial<RunOptions>): Promise<string>;
  /** Like run, for steps that may fail: the output so far and the error, if any. */
  attempt(script: string, config?: Partial<RunConfig>, options?: Partial<RunOptions>): Promise<{ output: string; error?: unknown }>;
  /** What `RUNTIME --root STATE list` shows. */
  containers(): Promise<string[]>;
}

export function stepConfig(script: string, config: Partial<RunConfig> = {}): RunConfig {
  return {
    argv: ['/bin/sh', '-c', script],
    cwd: '/',
    env: [['PATH', '/bin']],
    user: ROOT,
    hostname: 'builder',
    network: [],
    mounts: [],
    secrets: [],
    ...config,
  };
}

export async function scratch(
  runtime: Runtime,
  options: Pick<RuncSandboxOptions, 'fastSync' | 'hostNetwork' | 'seccomp' | 'limits' | 'userns'> = {},
): Promise<Scratch> {
  const dir = await mkdtemp(join(tmpdir(), `cairn-sandbox-${runtime}-`));
  const rootfs = join(dir, 'rootfs');
  const stateDir = join(dir, 'state');
  await makeBusyboxRootfs(rootfs);
  const sandbox = new RuncSandbox({ runtime, stateDir, ...options });
  await sandbox.init();
  onTestFinished(async () => {
    // init() also removes whatever a failed test left running.
    await sandbox.init();
    await rm(dir, { recursive: true, force: true });
  });
  const attempt: Scratch['attempt'] = async (script, config, runOptions) => {
    const chunks: Uint8Array[] = [];
    try {
      await sandbox.run(stepConfig(script, config), rootfs, { onOutput: (c) => chunks.push(c), ...runOptions });
      return { output: Buffer.concat(chunks).toString() };
    } catch (error) {
      return { output: Buffer.concat(chunks).toString(), error };
    }
  };
  return {
    dir,
    rootfs,
    stateDir,
    sandbox,
    attempt,
    run: async (script, config, runOptions) => {
      const { output, error } = await attempt(script, config, runOptions);
      if (error) throw new Error(`step failed: ${String(error)}\n${output}`, { cause: error });
      return output;
    },
    containers: () => listContainers(runtime, stateDir),
  };
}

export async function listContainers(runtime: Runtime, stateDir: string): Promise<string[]> {
  const { stdout } = await execa(runtime, ['--root', stateDir, 'list', '-q']);
  return stdout.split('\n').filter(Boolean);
}

/** Every path under `dir` with its type, to compare a tree before and after a run. */
export async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.map((e) => `${join(e.parentPath, e.name).slice(dir.length)} ${e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'link' : 'file'}`).sort();
}

export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!(await condition())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
