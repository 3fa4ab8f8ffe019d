/**
 * A step's resource limits, enforced by a cgroup of Cairn's own that the runtime places
 * the container under (the OCI config's `cgroupsPath` names a child of it). The limits
 * sit on this parent rather than in the OCI config's `resources` because the runtime
 * removes its own cgroup when the container ends, and with it the counters that say
 * whether a limit was hit; the parent outlives the container, so a failed step can be
 * told why. Both layouts: cgroup v2 (one hierarchy) and v1 (a hierarchy per controller,
 * Debian 12's hybrid layout included, whose v2 part has no controllers).
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes, type StepLimits } from './step-limits.js';

const ROOT = '/sys/fs/cgroup';
/** Under each hierarchy: `cairn/<container ID>`, the runtime's cgroup below it. */
const BASE = 'cairn';
const CPU_PERIOD_US = 100_000;

type Controller = 'memory' | 'pids' | 'cpu';

export class StepCgroup {
  private constructor(
    private readonly id: string,
    /** The runtime's cgroupsPath: a child of this step's cgroup. */
    readonly runtimePath: string,
    private readonly limits: StepLimits,
    /** This step's directory in each hierarchy that carries one of its limits. */
    private readonly dirs: ReadonlyMap<Controller, string>,
  ) {}

  /** Makes the step's cgroup with its limits written; the container goes below it. */
  static async create(id: string, limits: StepLimits): Promise<StepCgroup> {
    const v2 = existsSync(join(ROOT, 'cgroup.controllers'));
    const wanted: Controller[] = [];
    if (limits.memoryBytes !== undefined) wanted.push('memory');
    if (limits.pids !== undefined) wanted.push('pids');
    if (limits.cpus !== undefined) wanted.push('cpu');
    const dirs = new Map<Controller, string>();
    for (const controller of wanted) dirs.set(controller, v2 ? join(ROOT, BASE, id) : join(ROOT, controller, BASE, id));
    const cgroup = new StepCgroup(id, `/${BASE}/${id}/step`, limits, dirs);
    try {
      if (v2) await enableV2Controllers(wanted, id);
      for (const dir of new Set(dirs.values())) await mkdir(dir, { recursive: true });
      await cgroup.write(v2);
    } catch (e) {
      await cgroup.remove();
      throw new Error(`setting the step's limits in ${ROOT}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    return cgroup;
  }

  private async write(v2: boolean): Promise<void> {
    const { memoryBytes, pids, cpus } = this.limits;
    const set = (controller: Controller, file: string, value: string) => writeFile(join(this.dirs.get(controller)!, file), value);
    if (memoryBytes !== undefined) {
      if (v2) {
        await set('memory', 'memory.max', String(memoryBytes));
        if (existsSync(join(this.dirs.get('memory')!, 'memory.swap.max'))) await set('memory', 'memory.swap.max', '0');
      } else {
        await set('memory', 'memory.limit_in_bytes', String(memoryBytes));
        // Only with swap accounting on (swapaccount=1); it must not be below the limit above.
        if (existsSync(join(this.dirs.get('memory')!, 'memory.memsw.limit_in_bytes'))) await set('memory', 'memory.memsw.limit_in_bytes', String(memoryBytes));
      }
    }
    if (pids !== undefined) await set('pids', 'pids.max', String(pids));
    if (cpus !== undefined) {
      const quota = Math.max(1000, Math.round(cpus * CPU_PERIOD_US));
      if (v2) await set('cpu', 'cpu.max', `${quota} ${CPU_PERIOD_US}`);
      else {
        await set('cpu', 'cpu.cfs_period_us', String(CPU_PERIOD_US));
        await set('cpu', 'cpu.cfs_quota_us', String(quota));
      }
    }
  }

  /**
   * The limit the step has run into so far, said as its failure should say it; `killed`:
   * the step died of SIGKILL. The kernel counts a refused fork in the cgroup of the process
   * that forked and an OOM kill in the victim's, which with v1 is the runtime's cgroup
   * below this one, gone once the container is: so this is read while the step runs too,
   * and remembers what it saw. Past that, a SIGKILL with v1's high-water mark at the
   * limit is taken for the OOM killer (v1's failcnt stays 0 when memory+swap is limited).
   */
  async limitReached(killed = false): Promise<string | undefined> {
    const { memoryBytes, pids } = this.limits;
    if (pids !== undefined && (await this.counter('pids', 'pids.events', 'max')) > 0) return `pids limit ${pids} reached`;
    if (memoryBytes === undefined) return undefined;
    this.oomKilled ||= (await this.counter('memory', 'memory.events', 'oom_kill')) > 0 || (await this.counter('memory', 'memory.oom_control', 'oom_kill')) > 0;
    if (this.oomKilled || (killed && (await this.reachedMemoryLimit(memoryBytes)))) return `killed: out of memory (limit ${formatBytes(memoryBytes)})`;
    return undefined;
  }

  private oomKilled = false;

  /** v1: the high-water mark of memory (or memory + swap, charged first) reached the limit. */
  private async reachedMemoryLimit(limit: number): Promise<boolean> {
    const peak = Math.max(await this.counter('memory', 'memory.max_usage_in_bytes'), await this.counter('memory', 'memory.memsw.max_usage_in_bytes'));
    return peak >= limit;
  }

  /** A counter of this cgroup or the runtime's below it, whichever is higher: `key value` lines, or a bare number. */
  private async counter(controller: Controller, file: string, key?: string): Promise<number> {
    const dir = this.dirs.get(controller)!;
    let most = 0;
    for (const path of [join(dir, file), join(dir, 'step', file)]) {
      const text = await readFile(path, 'utf8').catch(() => '');
      const value =
        key === undefined
          ? text.trim()
          : text
              .split('\n')
              .find((l) => l.startsWith(`${key} `))
              ?.slice(key.length + 1);
      if (value) most = Math.max(most, Number(value));
    }
    return most;
  }

  /**
   * Removes the step's cgroup, and the runtime's below it should the runtime have left it;
   * with v1 in every hierarchy, as the runtime made `cairn/<id>` in each to put its own
   * cgroup there, the ones without a limit of ours included.
   */
  async remove(): Promise<void> {
    for (const base of await bases()) await removeCgroup(join(base, this.id));
  }

  /** Removes the cgroups of steps whose owner is gone (`leftover` says which, by container ID). */
  static async removeLeftovers(leftover: (id: string) => boolean): Promise<void> {
    for (const base of await bases()) {
      for (const id of await readdir(base).catch(() => [] as string[])) {
        if (leftover(id)) await removeCgroup(join(base, id)).catch(() => undefined);
      }
    }
  }
}

/**
 * How many forks the pids controller has refused to the cgroup of process `pid` (a
 * container another manager made, such as Docker's), or 0 when that cannot be read (the
 * process is gone, or is not this host's). The v1 pids hierarchy where there is one (a
 * hybrid layout also lists the v2 cgroup, which then has no pids controller), else v2.
 */
export async function refusedForks(pid: number): Promise<number> {
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '')).split('\n');
  const v1 = lines.find((l) => l.split(':')[1]?.split(',').includes('pids'));
  const v2 = lines.find((l) => l.startsWith('0::'));
  const path = v1 !== undefined ? join(ROOT, 'pids', v1.split(':')[2]!) : v2 !== undefined ? join(ROOT, v2.slice(3)) : undefined;
  if (path === undefined) return 0;
  const events = await readFile(join(path, 'pids.events'), 'utf8').catch(() => '');
  return Number(
    events
      .split('\n')
      .find((l) => l.startsWith('max '))
      ?.slice(4) ?? 0,
  );
}

/** `cairn` in the v2 hierarchy, or in each v1 hierarchy (named ones, such as systemd's, too). */
async function bases(): Promise<string[]> {
  if (existsSync(join(ROOT, 'cgroup.controllers'))) return [join(ROOT, BASE)];
  const hierarchies = (await readdir(ROOT, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory());
  return hierarchies.map((e) => join(ROOT, e.name, BASE));
}

/** v2 gives a child a controller only when every ancestor lists it in cgroup.subtree_control. */
async function enableV2Controllers(controllers: readonly Controller[], id: string): Promise<void> {
  const enable = controllers.map((c) => `+${c}`).join(' ');
  await writeFile(join(ROOT, 'cgroup.subtree_control'), enable);
  await mkdir(join(ROOT, BASE, id), { recursive: true });
  await writeFile(join(ROOT, BASE, 'cgroup.subtree_control'), enable);
  await writeFile(join(ROOT, BASE, id, 'cgroup.subtree_control'), enable);
}

/** A cgroup directory goes with rmdir once its children are gone (its files are not real files). */
async function removeCgroup(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory()) await removeCgroup(join(dir, entry.name));
  }
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      // EBUSY while the last of the step's processes are still being reaped.
      if (code !== 'EBUSY' || attempt >= 50) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
