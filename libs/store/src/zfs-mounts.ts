/**
 * Which published ZFS results this process has mounted, and when to unmount them, so
 * that a store of thousands of results keeps only the few in use mounted.
 *
 * A result is mounted while something uses it: `withRootfs` (`use`), reading its log
 * or metadata (`enter` until the reader is done), or publishing it (`publish`: the rename
 * into place mounts it, and uses wait for that). Once nothing uses it, it is unmounted:
 * at once when the grace is 0, else after `graceMs` without use (a timer), and at the
 * latest when the process exits. An unmount refused because a file is still open there
 * (busy) is tried again after another grace.
 *
 * The table is per process, keyed by mount root and dataset: every store on one root
 * shares it. Two processes sharing a store do not see each other's uses: one may unmount
 * a result while the other walks it without a file open (see docs/decisions.md).
 *
 * With a grace, every unmount is synchronous (from a timer or the exit handler, which
 * cannot wait), and only of a result nobody uses: a user counts from before it mounts.
 * Without one, uses and unmounts are serialised by a lock per dataset.
 */
export interface MountOps {
  /** False when there is no such dataset. */
  mount(dataset: string): Promise<boolean>;
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
    const leave = await this.enter(dataset);
    if (leave === undefined) throw new Error(`cannot mount ${dataset}: there is no such dataset`);
    try {
      return await fn();
    } finally {
      await leave();
    }
  }

  /**
   * Mounts `dataset` for a user until it calls the `leave` returned; the last user to
   * leave starts its grace. Undefined, with nothing held, when there is no such dataset.
   */
  async enter(dataset: string): Promise<(() => Promise<void>) | undefined> {
    const entry = this.entry(dataset);
    entry.users += 1;
    let found: boolean;
    try {
      found = await withLock(this.key(dataset), async () => {
        if (!entry.mounted) entry.mounted = await this.ops.mount(dataset);
        return entry.mounted;
      });
    } catch (e) {
      await this.leave(entry);
      throw e;
    }
    if (found) return () => this.leave(entry);
    await this.leave(entry);
    return undefined;
  }

  /**
   * Runs `put`, which puts `dataset` in place mounted (a rename into place), holding back
   * every use of it until `put` is done; then it is unmounted once idle, like any result.
   * A use that mounted it meanwhile would race with the mount the rename makes (zfs-fuse
   * refuses one of the two: "mountpoint or dataset is busy"), and one that found it
   * mounted could have it unmounted under its feet.
   */
  async publish(dataset: string, put: () => Promise<void>): Promise<void> {
    const entry = this.entry(dataset);
    entry.users += 1;
    try {
      await withLock(this.key(dataset), async () => {
        await put();
        entry.mounted = true;
      });
    } finally {
      await this.leave(entry);
    }
  }

  /** `dataset` was found mounted at start-up: unmount it once idle. */
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

  /** A user is done: the last one starts the grace, or forgets a dataset that is not mounted. */
  private async leave(entry: Entry): Promise<void> {
    entry.users -= 1;
    entry.lastUse = Date.now();
    if (entry.users > 0) return;
    if (!entry.mounted) {
      if (table.get(this.key(entry.dataset)) === entry) table.delete(this.key(entry.dataset));
      return;
    }
    // Staying mounted is harmless: a failed unmount never hides the user's outcome.
    await this.idle(entry).catch(() => undefined);
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
