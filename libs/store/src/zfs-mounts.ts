/**
 * Which published ZFS results this process has mounted, and when to unmount them, so
 * that a store of thousands of results keeps only the few in use mounted.
 *
 * A result is mounted while `withRootfs` uses it (`use`), or after `resultDir` was asked
 * for it (`touchSync`: the engine then reads its log or env by path, with no call to say
 * it is done). Once nothing uses it, it is unmounted: at once when the grace is 0, else
 * after `graceMs` without use (a timer), and at the latest when the process exits. An
 * unmount refused because a file is still open there (busy) is tried again after
 * another grace.
 *
 * The table is per process, keyed by mount root and dataset: every store on one root
 * shares it. Two processes sharing a store do not see each other's uses: one may unmount
 * a result while the other walks it without a file open (see docs/decisions.md).
 *
 * With a grace, every unmount is synchronous (from a timer or the exit handler), so that
 * it never interleaves with `touchSync`, which must mount synchronously. Without one,
 * resultDir does not mount, and uses and unmounts are serialised by a lock per dataset.
 */
export interface MountOps {
  mount(dataset: string): Promise<void>;
  /** False when there is no such dataset. */
  mountSync(dataset: string): boolean;
  /** Unmounts the dataset and whatever is mounted beneath it. */
  unmount(dataset: string): Promise<void>;
  unmountSync(dataset: string): void;
  /** Whether an unmount failed only because the filesystem is in use. */
  isBusy(error: unknown): boolean;
}

interface Entry {
  readonly dataset: string;
  readonly ops: MountOps;
  readonly graceMs: number;
  users: number;
  mounted: boolean;
  lastUse: number;
  timer?: NodeJS.Timeout;
}

const table = new Map<string, Entry>();
/** When a result without a grace was busy at exit or unmountIdle: when to try again. */
const BUSY_RETRY_MS = 30_000;
let exitHook = false;

export class ResultMounts {
  constructor(
    private readonly mountRoot: string,
    private readonly graceMs: number,
    private readonly ops: MountOps,
  ) {}

  /** Runs `fn` with `dataset` mounted; the last user to leave starts its grace. */
  async use<T>(dataset: string, fn: () => Promise<T>): Promise<T> {
    const entry = this.entry(dataset);
    entry.users += 1;
    try {
      await withLock(this.key(dataset), async () => {
        if (entry.mounted) return;
        await this.ops.mount(dataset);
        entry.mounted = true;
      });
      return await fn();
    } finally {
      entry.users -= 1;
      entry.lastUse = Date.now();
      // Staying mounted is harmless: a failed unmount never hides fn's outcome.
      if (entry.users === 0) await this.idle(entry).catch(() => undefined);
    }
  }

  /** Mounts `dataset` now if this process has not, and restarts its grace. False when it does not exist. */
  touchSync(dataset: string): boolean {
    const entry = this.entry(dataset);
    entry.lastUse = Date.now();
    if (!entry.mounted) {
      if (!this.ops.mountSync(dataset)) {
        table.delete(this.key(dataset));
        return false;
      }
      entry.mounted = true;
    }
    if (entry.users === 0) schedule(entry, this.graceMs);
    return true;
  }

  /** `dataset` is mounted (just published, or found mounted at start-up): unmount it once idle. */
  adopt(dataset: string): void {
    const entry = this.entry(dataset);
    entry.mounted = true;
    entry.lastUse = Date.now();
    if (entry.users === 0) schedule(entry, this.graceMs);
  }

  /** Forgets `dataset`, which is being destroyed (that unmounts it). */
  forget(dataset: string): void {
    const entry = table.get(this.key(dataset));
    if (entry?.timer) clearTimeout(entry.timer);
    table.delete(this.key(dataset));
  }

  /** Unmounts every idle result of this mount root now (busy ones stay mounted). */
  unmountIdle(): void {
    for (const [key, entry] of [...table]) if (key.startsWith(`${this.mountRoot}\0`)) expire(entry, true);
  }

  private async idle(entry: Entry): Promise<void> {
    if (entry.graceMs > 0) {
      schedule(entry, entry.graceMs);
      return;
    }
    await withLock(this.key(entry.dataset), async () => {
      // Someone may have started using it while this waited for the lock.
      if (entry.users > 0 || !entry.mounted) return;
      await this.ops.unmount(entry.dataset);
      entry.mounted = false;
      if (table.get(this.key(entry.dataset)) === entry) table.delete(this.key(entry.dataset));
    });
  }

  private entry(dataset: string): Entry {
    const key = this.key(dataset);
    let entry = table.get(key);
    if (!entry) {
      entry = { dataset, ops: this.ops, graceMs: this.graceMs, users: 0, mounted: false, lastUse: Date.now() };
      table.set(key, entry);
    }
    return entry;
  }

  private key(dataset: string): string {
    return `${this.mountRoot}\0${dataset}`;
  }
}

function schedule(entry: Entry, delayMs: number): void {
  if (entry.timer) clearTimeout(entry.timer);
  // unref: an idle mount never keeps the process alive; the exit handler unmounts it.
  entry.timer = setTimeout(() => expire(entry, false), delayMs).unref();
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const e of table.values()) expire(e, true);
    });
  }
}

/** Unmounts `entry` if nobody uses it and (unless `now`) its grace is over. Synchronous: see the module comment. */
function expire(entry: Entry, now: boolean): void {
  if (entry.users > 0 || !entry.mounted) return;
  const left = entry.lastUse + entry.graceMs - Date.now();
  if (!now && left > 0) {
    schedule(entry, left);
    return;
  }
  if (entry.timer) clearTimeout(entry.timer);
  entry.timer = undefined;
  try {
    entry.ops.unmountSync(entry.dataset);
  } catch (e) {
    // A file is open there: try again later. Any other failure leaves it mounted and
    // forgotten: the next use mounts it again (already mounted is fine), and the next
    // store `init` on this root takes it up.
    if (entry.ops.isBusy(e)) {
      entry.lastUse = Date.now();
      schedule(entry, entry.graceMs > 0 ? entry.graceMs : BUSY_RETRY_MS);
      return;
    }
  }
  entry.mounted = false;
  for (const [key, e] of table) if (e === entry) table.delete(key);
}

const lockTails = new Map<string, Promise<void>>();

/** Runs `fn` after every earlier `fn` with the same key has settled (per process). */
export async function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = lockTails.get(key) ?? Promise.resolve();
  const run = previous.then(fn);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  lockTails.set(key, tail);
  try {
    return await run;
  } finally {
    if (lockTails.get(key) === tail) lockTails.delete(key);
  }
}
