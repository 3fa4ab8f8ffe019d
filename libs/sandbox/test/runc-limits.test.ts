/**
 * Issue 18: a build step cannot take its worker down. Limits on real runc and crun, on
 * this machine's cgroup layout: a fork bomb stops at its pids limit, a memory hog is
 * killed at its memory limit, a busy loop gets its CPU quota and no more; each failure
 * names its limit, and another step on the same sandbox succeeds meanwhile.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { capLimits, hasLimits, LimitReachedError, parseBytes, parseStepLimits, StepCgroup } from '../src/index.js';
import { join } from 'node:path';
import { makeBusyboxRootfs } from '../../../test/support/rootfs.js';
import { RUNTIMES, scratch, stepConfig, type Scratch } from './harness.js';

const V2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
/** This process's step cgroups, in every hierarchy. */
const cgroupDirs = async (): Promise<string[]> => {
  const hierarchies = V2 ? [''] : (await readdir('/sys/fs/cgroup', { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  const found = await Promise.all(hierarchies.map((h) => readdir(`/sys/fs/cgroup/${h}/cairn`).catch(() => [] as string[])));
  return found.flat().filter((d) => d.startsWith(`cairn-${process.pid}.`));
};

/** Another step on the same sandbox, in a root filesystem of its own as every step has. */
async function beside(s: Scratch, script: string): Promise<string> {
  const rootfs = join(s.dir, `rootfs-${Math.random().toString(16).slice(2)}`);
  await makeBusyboxRootfs(rootfs);
  const chunks: Uint8Array[] = [];
  await s.sandbox.run(stepConfig(script), rootfs, { onOutput: (c) => chunks.push(c) });
  return Buffer.concat(chunks).toString();
}

describe.each(RUNTIMES)('%s: limits', (runtime) => {
  it('stops a fork bomb at its pids limit, names the limit, and another step runs meanwhile', async () => {
    const s = await scratch(runtime, { limits: { pids: 512 } });
    const started = Date.now();
    const bomb = s.attempt('bomb() { bomb | bomb & }; bomb; exec sleep 60');
    const other = beside(s, 'echo beside the bomb');
    expect(await other).toBe('beside the bomb\n');
    const { error } = await bomb;
    expect(error).toBeInstanceOf(LimitReachedError);
    expect((error as Error).message).toBe('pids limit 512 reached');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await s.containers()).toEqual([]);
    expect(await cgroupDirs()).toEqual([]);
  });

  it('kills a step past its memory limit, saying so, while another step runs', async () => {
    const s = await scratch(runtime, { limits: { memoryBytes: 256 * 1024 * 1024 } });
    // A shell variable of 400 MB, built in the shell's own memory.
    const hog = s.attempt('x=$(head -c 400000000 /dev/zero | tr "\\0" a); echo ${#x}');
    expect(await beside(s, 'echo beside the hog')).toBe('beside the hog\n');
    const { output, error } = await hog;
    expect(error).toBeInstanceOf(LimitReachedError);
    expect((error as Error).message).toBe('killed: out of memory (limit 256 MiB)');
    expect(output).not.toContain('400000000');
    expect(await cgroupDirs()).toEqual([]);
    // Under the limit, the same kind of step is fine.
    expect(await s.run('x=$(head -c 10000000 /dev/zero | tr "\\0" a); echo ${#x}')).toBe('10000000\n');
  });

  it('gives a busy step its CPU quota and no more', async () => {
    const s = await scratch(runtime, { limits: { cpus: 0.5 } });
    // Three busy loops for 2 s: without the quota they would use every CPU there is.
    const out = await s.run('time -p sh -c "for i in 1 2 3; do timeout 2 sh -c \'while :; do :; done\' & done; wait" 2>&1');
    const field = (name: string) => Number(new RegExp(`^${name} ([0-9.]+)$`, 'm').exec(out)?.[1]);
    const used = field('user') + field('sys');
    expect(field('real')).toBeGreaterThanOrEqual(1.9);
    expect(used / field('real')).toBeLessThan(0.65);
    expect(used).toBeGreaterThan(0.2);
  });

  it('uses no cgroup of its own for a step without limits', async () => {
    const s = await scratch(runtime);
    const before = await cgroupDirs();
    const step = s.run('sleep 1; echo done');
    await new Promise((r) => setTimeout(r, 500));
    expect(await cgroupDirs()).toEqual(before);
    expect(await step).toBe('done\n');
  });
});

describe('step limits', () => {
  it("caps what a job asks for by the worker's limits", () => {
    expect(capLimits({ memoryBytes: 8 * 2 ** 30, pids: 100 }, { memoryBytes: 4 * 2 ** 30, cpus: 2 })).toEqual({ memoryBytes: 4 * 2 ** 30, pids: 100, cpus: 2 });
    expect(capLimits(undefined, { pids: 4096 })).toEqual({ pids: 4096 });
    expect(capLimits(undefined, undefined)).toBeUndefined();
    expect(capLimits({ diskBytes: 2 ** 30 }, { diskBytes: 64 * 2 ** 20, pids: 10 })).toEqual({ diskBytes: 64 * 2 ** 20, pids: 10 });
  });

  it('reads a disk limit with the others, which alone is no limit a sandbox enforces (the store does)', () => {
    const where = (key: string) => `--${key}`;
    expect(parseStepLimits({ disk: '10g' }, where)).toEqual({ diskBytes: 10 * 2 ** 30 });
    expect(hasLimits(parseStepLimits({ disk: '10g' }, where))).toBe(false);
    expect(parseStepLimits({ disk: '64m', pids: '512' }, where)).toEqual({ diskBytes: 64 * 2 ** 20, pids: 512 });
    expect(parseStepLimits({}, where)).toBeUndefined();
    expect(() => parseStepLimits({ disk: '0' }, where)).toThrow('--disk: "0" is not a positive size');
    expect(() => parseStepLimits({ disk: 'lots' }, where)).toThrow('--disk: "lots" is not a size (e.g. 512m, 4g)');
  });

  it('reads sizes as people write them, and says where one is wrong', () => {
    expect([parseBytes('512m', 'x'), parseBytes('4G', 'x'), parseBytes('1048576', 'x'), parseBytes('1.5k', 'x')]).toEqual([
      512 * 2 ** 20,
      4 * 2 ** 30,
      1048576,
      1536,
    ]);
    expect(() => parseBytes('lots', '--memory')).toThrow('--memory: "lots" is not a size (e.g. 512m, 4g)');
  });

  it('removes the cgroups of steps whose process is gone, and only those', async () => {
    const base = V2 ? '/sys/fs/cgroup/cairn' : '/sys/fs/cgroup/pids/cairn';
    const dead = 'cairn-999999999.1-00000000';
    const live = `cairn-${process.pid}.0-11111111`;
    await mkdir(`${base}/${dead}/step`, { recursive: true });
    await mkdir(`${base}/${live}`, { recursive: true });
    try {
      await StepCgroup.removeLeftovers((id) => id === dead);
      expect(existsSync(`${base}/${dead}`)).toBe(false);
      expect(existsSync(`${base}/${live}`)).toBe(true);
    } finally {
      await StepCgroup.removeLeftovers((id) => id === live);
    }
  });
});
