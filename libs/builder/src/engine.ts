import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  applyContextOp, baseId, copyDestination, copyHashInput, CopyError, generateManifest, initialContext, ManifestError,
  runHashInput, runInputOf, secretDigest, sha256Hex, type BuildContext, type Manifest, type SecretInput, type TargetOs,
} from '@cairn/hashing';
import type { Fetcher } from '@cairn/fetcher';
import { CancelledError, type Sandbox, type Secret } from '@cairn/sandbox';
import { atom, list, oneLine, printOp, ROOT_UNIX, toMachine, type CopyOp, type RunOp, type Spec } from '@cairn/spec';
import type { CacheView, Store } from '@cairn/store';
import { heading, note, type Logger, type StepEvent } from './log.js';
import { MetadataDb, type LockHolder } from './metadata-db.js';
import { SecretMasker } from './secret-mask.js';
import { SharedSteps } from './shared-steps.js';
import { Leases, lockStep, pidOf } from './store-claims.js';
import { replayLog, StepLog } from './step-log.js';

/**
 * The engine: runs a spec op by op. For each step it computes the step ID; when the
 * store has it, it replays the stored log and moves on; otherwise it clones the parent
 * snapshot, runs the step in the sandbox on the clone and publishes the clone under the
 * ID. Identical steps requested at the same time run once (SharedSteps). Failed steps
 * leave nothing behind.
 */
export interface BuilderOptions {
  readonly store: Store;
  readonly sandbox: Sandbox;
  readonly fetcher: Fetcher;
  /** The metadata database file (SQLite). */
  readonly dbPath: string;
  /** Key for secret digests in step IDs (see @cairn/hashing secretDigest). */
  readonly secretKey: string;
  readonly os?: TargetOs;
}

export interface BuildOptions {
  /** Directory that `(copy (from context) ...)` reads. */
  readonly contextDir?: string;
  /** Secret values by ID. */
  readonly secrets?: ReadonlyMap<string, Uint8Array>;
  readonly log: Logger;
  /** Called once per snapshot step when it is done (published or replayed). */
  readonly onStep?: (step: StepEvent) => void;
  readonly signal?: AbortSignal;
}

/** A step failed: the message names the op and why. */
export class BuildError extends Error {
  override readonly name = 'BuildError';
}

/** A snapshot that a running build (in this process or another) stands on cannot be deleted. */
export class SnapshotInUseError extends BuildError {
  constructor(id: string, owner: string) {
    super(`snapshot ${id} is in use by a running build (process ${pidOf(owner)})`);
  }
}

const HOSTNAME = 'builder';

export class Builder {
  private readonly steps = new SharedSteps<'built' | 'published elsewhere'>();
  /** Snapshots that running builds stand on, leased: no process prunes or deletes them. */
  private readonly leases: Leases;

  private constructor(
    private readonly options: BuilderOptions,
    private readonly db: MetadataDb,
  ) {
    this.leases = new Leases(db, join(dirname(options.dbPath), 'leases'));
  }

  /** Opens the store, sandbox and database, cleaning up after any crash. */
  static async open(options: BuilderOptions): Promise<Builder> {
    // Containers first: a dead process's container may still hold a temp snapshot open.
    await options.sandbox.init();
    await options.store.init();
    return new Builder(options, new MetadataDb(options.dbPath));
  }

  close(): void {
    this.db.close();
    this.leases.close();
  }

  get store(): Store {
    return this.options.store;
  }

  /** Builds `spec`; resolves to the ID of its final snapshot. */
  async build(spec: Spec, options: BuildOptions): Promise<string> {
    const held: string[] = [];
    const hold = (id: string) => {
      held.push(id);
      this.leases.take(id);
    };
    try {
      return await this.buildStage(spec, '', new Map(), options, hold);
    } finally {
      this.db.flush();
      this.leases.release(held);
    }
  }

  private async buildStage(spec: Spec, stage: string, outer: ReadonlyMap<string, Promise<string>>, options: BuildOptions, hold: (id: string) => void): Promise<string> {
    // Child builds run in parallel and their events interleave: each says whose it is.
    const log = options.log;
    options = { ...options, log: (event) => log(event.stage === undefined ? { ...event, stage } : event) };
    const builds = new Map(outer);
    // Independent child builds run in parallel; one that copies from an earlier sibling waits for it.
    for (const child of spec.childBuilds) {
      const scope = new Map(builds);
      const result = (async () => {
        options.log(heading(`(build ${oneLine(atom(child.name))} ...)`));
        const id = await this.buildStage(child.spec, child.name, scope, options, hold);
        options.log(note(`--> finished ${JSON.stringify(child.name)}`));
        return id;
      })();
      result.catch(() => undefined);
      builds.set(child.name, result);
    }
    await Promise.all(builds.values());
    const { id: base, env: imageEnv } = await this.baseImage(spec.from, stage, options, hold);
    let ctx = initialContext(this.options.os ?? 'unix', imageEnv);
    let parent = base;
    for (const op of spec.ops) {
      options.log(heading(`${ctx.workdir}: ${printOp(op)}`));
      const next = applyContextOp(ctx, op);
      if (next) {
        ctx = next;
        continue;
      }
      parent = op.op === 'run'
        ? await this.runStep(op as RunOp, stage, ctx, parent, options, hold)
        : await this.copyStep(op as CopyOp, stage, ctx, parent, builds, options, hold);
    }
    return parent;
  }

  private async baseImage(image: string, stage: string, options: BuildOptions, hold: (id: string) => void): Promise<{ id: string; env: [string, string][] }> {
    options.log(heading(oneLine(list(atom('from'), atom(image)))));
    const id = baseId(image);
    await this.step(oneLine(list(atom('from'), atom(image))), stage, id, undefined, options, hold, async (dir, log) => {
      const fetched = await this.options.fetcher.fetch(image, join(dir, 'rootfs'), (line) => log.write(Buffer.from(`${line}\n`)));
      await writeFile(join(dir, 'env.json'), JSON.stringify({ env: fetched.env, digest: fetched.digest }));
    });
    const saved = JSON.parse(await readFile(join(this.store.resultDir(id), 'env.json'), 'utf8')) as { env: [string, string][] };
    return { id, env: saved.env };
  }

  private async runStep(op: RunOp, stage: string, ctx: BuildContext, parent: string, options: BuildOptions, hold: (id: string) => void): Promise<string> {
    const secrets: Secret[] = [];
    const digests: SecretInput[] = [];
    for (const s of op.secrets) {
      const value = options.secrets?.get(s.id);
      if (value === undefined) throw new BuildError(`${printOp(op)}: no value was supplied for secret "${s.id}" (use --secret ${s.id}:FILE)`);
      secrets.push({ target: s.target, value });
      digests.push({ target: s.target, digest: secretDigest(this.options.secretKey, value) });
    }
    const input = runInputOf(ctx, parent, op, digests);
    const id = sha256Hex(toMachine(runHashInput(input)));
    // Steps without secrets write their output untouched.
    const masker = secrets.length === 0 ? undefined : SecretMasker.for(secrets.map((s) => s.value));
    await this.step(printOp(op), stage, id, parent, options, hold, async (dir, log, signal) => {
      const views: CacheView[] = [];
      let ok = false;
      const output = masker?.stream((chunk) => log.write(chunk));
      try {
        for (const c of op.cache) views.push(await this.store.cache(c.id, ctx.user));
        await this.options.sandbox.run({
          argv: [...ctx.shell, op.shell],
          cwd: ctx.workdir,
          env: ctx.env,
          user: ctx.user,
          hostname: HOSTNAME,
          network: op.network,
          mounts: op.cache.map((c, i) => ({ src: views[i]!.path, dst: c.target })),
          secrets,
        }, join(dir, 'rootfs'), { onOutput: output ? (chunk) => output.write(chunk) : (chunk) => log.write(chunk), signal });
        ok = true;
      } finally {
        output?.end();
        for (const view of views) await view.release(ok);
      }
    }, masker);
    return id;
  }

  private async copyStep(op: CopyOp, stage: string, ctx: BuildContext, parent: string, builds: ReadonlyMap<string, Promise<string>>, options: BuildOptions, hold: (id: string) => void): Promise<string> {
    const fromDir = async <T>(fn: (dir: string) => Promise<T>): Promise<T> => {
      if (op.from.kind === 'context') {
        if (options.contextDir === undefined) throw new BuildError(`${printOp(op)}: no build context was given`);
        return fn(options.contextDir);
      }
      const child = await builds.get(op.from.name)!;
      return this.store.withRootfs(child, fn);
    };
    return fromDir(async (srcDir) => {
      let items: Manifest[];
      let id: string;
      const dst = copyDestination(ctx, op.dst);
      try {
        items = [];
        for (const src of op.src) items.push(await generateManifest(srcDir, src, op.exclude));
        id = sha256Hex(toMachine(copyHashInput({ base: parent, user: ctx.user, items, dst })));
      } catch (e) {
        if (e instanceof ManifestError || e instanceof CopyError) throw new BuildError(`${printOp(op)}: ${e.message}`);
        throw e;
      }
      await this.step(printOp(op), stage, id, parent, options, hold, async (dir, log, signal) => {
        // Loaded when a copy really runs, not at start: a cached build never needs tar-stream.
        const { copyTarStream } = await import('./tar-transfer.js');
        await this.options.sandbox.run({
          argv: ['tar', '-xf', '-'],
          cwd: '/',
          env: [['PATH', '/bin:/usr/bin']],
          user: ROOT_UNIX,
          hostname: HOSTNAME,
          network: [],
          mounts: [],
          secrets: [],
        }, join(dir, 'rootfs'), { stdin: copyTarStream(srcDir, items, dst, ctx.user), onOutput: (chunk) => log.write(chunk), signal });
      });
      return id;
    });
  }

  /**
   * One snapshot step: replay it from the store, or build it once for every concurrent
   * requester. `work` fills `dir` (rootfs already cloned from `parent`) and writes the log.
   */
  private async step(
    what: string,
    stage: string,
    id: string,
    parent: string | undefined,
    options: BuildOptions,
    hold: (id: string) => void,
    work: (dir: string, log: StepLog, signal: AbortSignal) => Promise<void>,
    /** Masks the replay too: a log stored before masking existed may hold the values. */
    masker?: SecretMasker,
  ): Promise<void> {
    hold(id);
    options.signal?.throwIfAborted();
    await this.leases.ready(id, options.signal);
    const started = Date.now();
    const done = (cached: boolean) => options.onStep?.({ id, op: what, stage, cached, ms: Date.now() - started });
    if (await this.store.exists(id)) {
      await this.replay(id, options, masker);
      done(true);
      return;
    }
    const outcome = await this.steps.run(id, options.signal, async (signal, publishLog) => {
      // One process runs a step; the others sharing the store wait and take its result.
      const waiting = (holder: LockHolder) => options.log(note(`---> waiting for process ${pidOf(holder.owner)}, which is running this step`));
      if (!(await lockStep(this.db, this.store, id, signal, waiting))) return 'published elsewhere';
      try {
        // Published between the look and the lock.
        if (await this.store.exists(id)) return 'published elsewhere';
        try {
          await this.store.build(parent, id, async (dir) => {
            const log = await StepLog.create(join(dir, 'log'));
            publishLog(log);
            try {
              await work(dir, log, signal);
            } finally {
              await log.finish();
            }
          });
        } catch (e) {
          // A process that does not take step locks (an older Cairn) may have published it first.
          if (await this.store.exists(id)) return 'published elsewhere';
          if (signal.aborted) throw new CancelledError();
          throw e;
        }
        this.db.add(id, parent);
        return 'built';
      } finally {
        this.db.unlock(id, this.leases.owner);
      }
    }, async (log) => {
      for await (const chunk of log.tail()) {
        if (options.signal?.aborted) break;
        options.log({ tag: 'output', data: chunk });
      }
    }).catch((e: unknown) => {
      if (e instanceof CancelledError || e instanceof BuildError) throw e;
      throw new BuildError(`${what} failed: ${e instanceof Error ? e.message : String(e)}`);
    });
    if (outcome === 'published elsewhere') {
      // Its output is this build's output too, as on any cache hit.
      await this.replay(id, options, masker);
      done(true);
      return;
    }
    options.log(note(`---> saved as ${JSON.stringify(id)}`));
    done(false);
  }

  private async replay(id: string, options: BuildOptions, masker?: SecretMasker): Promise<void> {
    const output = masker?.stream((data) => options.log({ tag: 'output', data }));
    for await (const chunk of replayLog(join(this.store.resultDir(id), 'log'))) {
      if (output) output.write(chunk);
      else options.log({ tag: 'output', data: chunk });
    }
    output?.end();
    this.db.touch(id);
    options.log(note(`---> using ${JSON.stringify(id)} from cache`));
  }

  /**
   * Deletes a snapshot and everything built on it (children first), unless a running
   * build of any process stands on one of them (SnapshotInUseError).
   */
  async delete(id: string, log: (line: string) => void = () => undefined): Promise<void> {
    const user = this.leases.holderOf(id);
    if (user !== undefined) throw new SnapshotInUseError(id, user);
    for (const child of this.db.children(id)) await this.delete(child, log);
    const blocker = this.leases.lockForDelete(id);
    if (blocker !== undefined) throw new SnapshotInUseError(id, blocker.owner);
    try {
      await this.store.delete(id);
      this.db.remove(id);
    } finally {
      this.db.unlock(id, this.leases.owner);
    }
    log(`removed ${id}`);
  }

  /**
   * Deletes up to `limit` snapshots last used before `before` (ms since the epoch),
   * least recently used leaves first. Deleting a leaf can make its parent a leaf, so the
   * choice is made afresh after each deletion. Snapshots that running builds of any
   * process stand on (leases) or are building or deleting (locks) are kept.
   */
  async prune(before: number, limit: number, log: (line: string) => void = () => undefined): Promise<string[]> {
    const removed: string[] = [];
    while (removed.length < limit) {
      const leaf = this.leases.lockOldestLeaf(before);
      if (!leaf) break;
      try {
        await this.store.delete(leaf.id);
        this.db.remove(leaf.id);
      } finally {
        this.db.unlock(leaf.id, this.leases.owner);
      }
      removed.push(leaf.id);
      log(`removed ${leaf.id} (last used ${new Date(leaf.used).toISOString()})`);
    }
    return removed;
  }

  /** How many snapshots the metadata database records. */
  snapshotCount(): number {
    return this.db.count();
  }

  /**
   * Runs a trivial step (`echo healthcheck` on `image`) under a timeout, and removes
   * its result: proves the store, sandbox and fetcher work together.
   */
  async healthcheck(image: string, timeoutMs: number): Promise<void> {
    const output: Uint8Array[] = [];
    const spec: Spec = { childBuilds: [], from: image, ops: [{ op: 'shell', args: ['/bin/sh', '-c'] }, { op: 'run', cache: [], network: [], secrets: [], shell: 'echo healthcheck' }] };
    const signal = AbortSignal.timeout(timeoutMs);
    let id: string;
    try {
      id = await this.build(spec, { log: (e) => void (e.tag === 'output' && output.push(e.data)), signal });
    } catch (e) {
      if (signal.aborted) throw new BuildError(`healthcheck timed out after ${timeoutMs} ms`);
      throw e;
    }
    if (!Buffer.concat(output).toString().includes('healthcheck')) throw new BuildError('healthcheck step printed nothing');
    // Another process's build may stand on the same result (two healthchecks at once): it stays for them.
    await this.delete(id).catch((e: unknown) => {
      if (!(e instanceof SnapshotInUseError)) throw e;
    });
  }
}
