import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ZfsStore, type ZfsStoreOptions } from '../src/zfs-store.js';

// The recording ZFS shim (fixtures/zfs-shim.mjs) and a pool on it, shared by the ZFS store's
// tests and by the engine's tests on the ZFS store (libs/builder/test).

const SHIM = fileURLToPath(new URL('./fixtures/zfs-shim.mjs', import.meta.url));

export interface ShimState {
  datasets: Record<string, { mounted: boolean; origin?: string; canmount?: string }>;
  snapshots: Record<string, { guid: string; deferred?: boolean }>;
  space: { used: number; available: number };
}

/** A temp dir with `zfs` and `zpool` shims recording into it, and a pool `tank` with nothing in it. */
export class ShimmedPool {
  readonly state: string;
  readonly mountRoot: string;
  readonly commands: { zfs: string; zpool: string };

  constructor(readonly dir: string) {
    this.state = join(dir, 'state');
    this.mountRoot = join(dir, 'mnt', 'cairn');
    this.commands = { zfs: join(dir, 'bin', 'zfs'), zpool: join(dir, 'bin', 'zpool') };
  }

  /**
   * `name` and `mountpoint` name the pool's own dataset (`tank` at DIR/mnt/tank by
   * default); a test driving `--store zfs:POOL/DATASET`, whose mount root is always
   * `/POOL/DATASET`, names a pool mounted where it may write.
   */
  static async create(options: { readonly name?: string; readonly mountpoint?: string } = {}): Promise<ShimmedPool> {
    const pool = new ShimmedPool(await mkdtemp(join(tmpdir(), 'cairn-zfs-')));
    const name = options.name ?? 'tank';
    const mountpoint = options.mountpoint ?? join(pool.dir, 'mnt', 'tank');
    for (const sub of ['bin', 'state/snaps', 'state/hidden']) await mkdir(join(pool.dir, sub), { recursive: true });
    await mkdir(mountpoint, { recursive: true });
    for (const command of ['zfs', 'zpool'] as const) {
      // Status 141 is the shim asking to die by SIGPIPE, which node cannot do to itself.
      const wrapper = `#!/bin/sh\n'${process.execPath}' '${SHIM}' '${pool.state}' ${command} "$@"\nstatus=$?\n[ $status = 141 ] && kill -PIPE $$\nexit $status\n`;
      await writeFile(pool.commands[command], wrapper);
      await chmod(pool.commands[command], 0o755);
    }
    const state = {
      pool: name,
      health: 'ONLINE',
      space: { used: 1000, available: 5000 },
      zpool: { free: 5000, size: 8000 },
      nextGuid: 1000,
      datasets: { [name]: { mountpoint, mounted: true } },
      snapshots: {},
    };
    await writeFile(join(pool.state, 'state.json'), JSON.stringify(state));
    await writeFile(join(pool.state, 'log.jsonl'), '');
    return pool;
  }

  store(options: Partial<ZfsStoreOptions> = {}): ZfsStore {
    return new ZfsStore({ pool: 'tank', mountRoot: this.mountRoot, commands: this.commands, ...options });
  }

  async initStore(options: Partial<ZfsStoreOptions> = {}): Promise<ZfsStore> {
    const store = this.store(options);
    await store.init();
    await this.takeLog();
    return store;
  }

  /** The commands run since the last call, one string each: temps read T-<n>-<label>, the mount root $MNT. */
  async takeLog(): Promise<string[]> {
    const path = join(this.state, 'log.jsonl');
    const text = await readFile(path, 'utf8');
    await writeFile(path, '');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => (JSON.parse(line) as string[]).join(' '))
      .map(normalize.bind(this));
  }

  /** Runs the shim directly, as an administrator would run zfs. */
  zfs(...args: string[]): void {
    const r = spawnSync(this.commands.zfs, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
  }

  async readState(): Promise<ShimState> {
    return JSON.parse(await readFile(join(this.state, 'state.json'), 'utf8')) as ShimState;
  }

  async setSpace(used: number, available: number): Promise<void> {
    await this.editState((state) => (state.space = { used, available }));
  }

  /** Makes `zfs unmount` of each of `datasets` fail as busy (a file open there), or none again. */
  async busy(datasets: readonly string[]): Promise<void> {
    await this.editState((state) => (state.busy = datasets));
  }

  /** Makes every later `zfs SUB` fail with `message`. */
  async failing(sub: string, message: string): Promise<void> {
    await this.editState((state) => (state.failures = { [sub]: message }));
  }

  /** zfs-fuse's daemon dropping the socket of the next `zfs SUB`: it dies by SIGPIPE, having done nothing. */
  async sigpipeOnce(sub: string): Promise<void> {
    await this.editState((state) => (state.sigpipe = sub));
  }

  /** After `skip` more of them, a `zfs SUB` does its work, then fails with `message` (as zfs-fuse has done). */
  async doneButFailsOnce(sub: string, skip: number, message: string): Promise<void> {
    await this.editState((state) => (state.doneButFails = { sub, skip, message }));
  }

  private async editState(edit: (state: ShimState & Record<string, unknown>) => void): Promise<void> {
    const state = (await this.readState()) as ShimState & Record<string, unknown>;
    edit(state);
    await writeFile(join(this.state, 'state.json'), JSON.stringify(state));
  }
}

export function normalize(this: ShimmedPool, line: string): string {
  return line
    .replaceAll(this.mountRoot, '$MNT')
    .replaceAll(new RegExp(`\\b${process.pid}(?:\\.\\d+)?-(\\d+)-`, 'g'), 'T-')
    .replaceAll(/@old-\d+/g, '@old-G');
}

export const R = 'tank/cairn/result';
export const RT = 'tank/cairn/result-tmp';
export const C = 'tank/cairn/cache';
export const CT = 'tank/cairn/cache-tmp';
