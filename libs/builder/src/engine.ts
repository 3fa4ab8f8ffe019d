import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyContextOp,
  baseId,
  copyDestination,
  copyStepKey,
  CopyError,
  generateManifest,
  initialContext,
  ManifestError,
  runStepKey,
  secretDigest,
  type BuildContext,
  type FileDigestCache,
  type Manifest,
  type SecretInput,
  type TargetOs,
} from '@cairn/hashing';
import type { Fetcher } from '@cairn/fetcher';
import { CancelledError, capLimits, formatDuration, LimitReachedError, type Sandbox, type Secret, type StepLimits } from '@cairn/sandbox';
import { atom, list, oneLine, printOp, ROOT_UNIX, type CopyOp, type RunOp, type Spec } from '@cairn/spec';
import { RESULT_METADATA, type BuildLimits, type CacheView, type Store } from '@cairn/store';
import { DbStore, type BuildLease, type ReceivedStream, type StepWork } from './db-store.js';
import { BuildError, SnapshotInUseError } from './errors.js';
import { heading, note, stepDone, stepHeading, type Logger, type StepEvent } from './log.js';
import { SecretMasker } from './secret-mask.js';
import type { StepLog } from './step-log.js';
import { pidOf } from './store-claims.js';

/**
 * The engine: runs a spec op by op. For each step it computes the step ID; when the
 * store has it, it replays the stored log and moves on; otherwise it clones the parent
 * snapshot, runs the step in the sandbox on the clone and publishes the clone under the
 * ID. Whether a step is built, shared with another requester or taken from the store is
 * the DbStore's call (db-store.ts); the engine only says how to build it. Failed steps
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
  /**
   * The machine's step limits, the most a build may ask for. The sandbox holds steps to
   * the others; the engine reads the disk limit here, which the store enforces.
   */
  readonly limits?: StepLimits;
}

export interface BuildOptions {
  /** Directory that `(copy (from context) ...)` reads. */
  readonly contextDir?: string;
  /** Digests of the context's files from earlier runs (a ContextHashCache), and where this build's go. */
  readonly contextDigests?: FileDigestCache;
  /** Secret values by ID. */
  readonly secrets?: ReadonlyMap<string, Uint8Array>;
  readonly log: Logger;
  /** Called once per snapshot step when it is done (published or replayed). */
  readonly onStep?: (step: StepEvent) => void;
  readonly signal?: AbortSignal;
  /**
   * The trust domain this build's caches belong to (a worker gives its job's client, or
   * the operator's pool of clients that share): `(cache (npm ...))` then mounts the
   * domain's `npm`, which no other domain sees, and a step that mounts a cache has an ID
   * naming the domain, so no other domain replays what it left. None (`cairn build`):
   * the store's unscoped caches, and OBuilder's step IDs.
   */
  readonly cacheDomain?: string;
  /** What each `run` step may use, capped by the machine's (the sandbox's; the disk limit by BuilderOptions.limits). */
  readonly limits?: StepLimits;
  /** A `run` step still running after this long is killed with its processes, and fails saying so. */
  readonly stepTimeoutMs?: number;
}

/** What one build's stages share: its options, with the leases of the snapshots it stands on. */
interface BuildScope extends BuildOptions {
  readonly lease: BuildLease;
}

const HOSTNAME = 'builder';

export class Builder {
  private constructor(
    private readonly options: BuilderOptions,
    private readonly db: DbStore,
  ) {}

  /** Opens the store, sandbox and database, cleaning up after any crash. */
  static async open(options: BuilderOptions): Promise<Builder> {
    // Containers first: a dead process's container may still hold a temp snapshot open.
    await options.sandbox.init();
    await options.store.init();
    // A machine whose every step asks for what its store cannot do: say so now, not at a step.
    if (options.limits?.diskBytes !== undefined) await options.store.checkDiskLimit();
    return new Builder(options, new DbStore(options.store, options.dbPath));
  }

  close(): void {
    this.db.close();
  }

  get store(): Store {
    return this.options.store;
  }

  /** Builds `spec`; resolves to the ID of its final snapshot. */
  async build(spec: Spec, options: BuildOptions): Promise<string> {
    const lease = this.db.lease();
    try {
      return await this.buildStage(spec, '', new Map(), { ...options, lease });
    } finally {
      lease.release();
    }
  }

  private async buildStage(spec: Spec, stage: string, outer: ReadonlyMap<string, Promise<string>>, options: BuildScope): Promise<string> {
    // Child builds run in parallel and their events interleave: each says whose it is.
    const log = options.log;
    options = { ...options, log: (event) => log(event.stage === undefined ? { ...event, stage } : event) };
    const builds = new Map(outer);
    // Independent child builds run in parallel; one that copies from an earlier sibling waits for it.
    for (const child of spec.childBuilds) {
      const scope = new Map(builds);
      const result = (async () => {
        options.log(heading(`(build ${oneLine(atom(child.name))} ...)`));
        const id = await this.buildStage(child.spec, child.name, scope, options);
        options.log(note(`--> finished ${JSON.stringify(child.name)}`));
        return id;
      })();
      result.catch(() => undefined);
      builds.set(child.name, result);
    }
    await Promise.all(builds.values());
    const { id: base, env: imageEnv } = await this.baseImage(spec.from, stage, options);
    let ctx = initialContext(this.options.os ?? 'unix', imageEnv);
    let parent = base;
    for (const op of spec.ops) {
      const title = `${ctx.workdir}: ${printOp(op)}`;
      const next = applyContextOp(ctx, op);
      options.log(next ? heading(title) : stepHeading(title));
      if (next) {
        ctx = next;
        continue;
      }
      parent =
        op.op === 'run' ? await this.runStep(op as RunOp, stage, ctx, parent, options) : await this.copyStep(op as CopyOp, stage, ctx, parent, builds, options);
    }
    return parent;
  }

  private async baseImage(image: string, stage: string, options: BuildScope): Promise<{ id: string; env: [string, string][] }> {
    options.log(stepHeading(oneLine(list(atom('from'), atom(image)))));
    const id = baseId(image);
    await this.step(
      oneLine(list(atom('from'), atom(image))),
      stage,
      id,
      undefined,
      options,
      async (dir, log) => {
        const fetched = await this.options.fetcher.fetch(image, join(dir, 'rootfs'), (line) => log.write(Buffer.from(`${line}\n`)));
        await writeFile(join(dir, RESULT_METADATA), JSON.stringify({ env: fetched.env, digest: fetched.digest }));
      },
      undefined,
      {},
      (signal) => this.datasetStream(image, options, signal),
    );
    return { id, env: await this.baseEnv(image) };
  }

  /**
   * The image as a ZFS dataset stream in a scratch file, when the fetcher can get one and
   * the image offers one (a ZFS store then receives it instead of unpacking layers).
   */
  private async datasetStream(image: string, options: BuildScope, signal: AbortSignal): Promise<ReceivedStream | undefined> {
    const fetcher = this.options.fetcher;
    if (!fetcher.datasetStream) return undefined;
    const dir = await mkdtemp(join(tmpdir(), 'cairn-dataset-stream-'));
    const discard = () => rm(dir, { recursive: true, force: true });
    try {
      const file = join(dir, 'stream');
      const fetched = await fetcher.datasetStream(image, file, (line) => options.log({ tag: 'output', data: Buffer.from(`${line}\n`) }));
      signal.throwIfAborted();
      if (fetched) return { file, discard };
    } catch (e) {
      await discard();
      throw e;
    }
    await discard();
    return undefined;
  }

  /** The env the base image `image` was fetched with, from its stored result. */
  private async baseEnv(image: string): Promise<[string, string][]> {
    const id = baseId(image);
    const metadata = await this.store.metadata(id);
    if (metadata === undefined) throw new BuildError(`base image ${image}: the stored result ${id} has no ${RESULT_METADATA}`);
    return (JSON.parse(metadata) as { env: [string, string][] }).env;
  }

  /**
   * The workdir, user, env and shell `spec`'s final snapshot was left with: what an image
   * of the result runs with. The spec must have been built (its base image is read back).
   */
  async resultContext(spec: Spec): Promise<BuildContext> {
    let ctx = initialContext(this.options.os ?? 'unix', await this.baseEnv(spec.from));
    for (const op of spec.ops) ctx = applyContextOp(ctx, op) ?? ctx;
    return ctx;
  }

  private async runStep(op: RunOp, stage: string, ctx: BuildContext, parent: string, options: BuildScope): Promise<string> {
    const secrets: Secret[] = [];
    const digests: SecretInput[] = [];
    for (const s of op.secrets) {
      const value = options.secrets?.get(s.id);
      if (value === undefined) throw new BuildError(`${printOp(op)}: no value was supplied for secret "${s.id}" (use --secret ${s.id}:FILE)`);
      secrets.push({ target: s.target, value });
      digests.push({ target: s.target, digest: secretDigest(this.options.secretKey, value) });
    }
    const { id } = runStepKey(ctx, parent, op, digests, options.cacheDomain);
    // Steps without secrets write their output untouched.
    const masker = secrets.length === 0 ? undefined : SecretMasker.for(secrets.map((s) => s.value));
    const diskBytes = capLimits(options.limits, this.options.limits)?.diskBytes;
    await this.step(
      printOp(op),
      stage,
      id,
      parent,
      options,
      async (dir, log, signal) => {
        const views: CacheView[] = [];
        let ok = false;
        const output = masker?.stream((chunk) => log.write(chunk));
        try {
          for (const c of op.cache) views.push(await this.store.cache(c.id, ctx.user, options.cacheDomain));
          const timeout = options.stepTimeoutMs === undefined ? undefined : AbortSignal.timeout(options.stepTimeoutMs);
          await this.options.sandbox
            .run(
              {
                argv: [...ctx.shell, op.shell],
                cwd: ctx.workdir,
                env: ctx.env,
                user: ctx.user,
                hostname: HOSTNAME,
                network: op.network,
                mounts: op.cache.map((c, i) => ({ src: views[i]!.path, dst: c.target })),
                secrets,
              },
              join(dir, 'rootfs'),
              {
                onOutput: output ? (chunk) => output.write(chunk) : (chunk) => log.write(chunk),
                signal: timeout ? AbortSignal.any([signal, timeout]) : signal,
                ...(options.limits ? { limits: options.limits } : {}),
              },
            )
            .catch((e: unknown) => {
              // Killed by the sandbox as on a cancel, but a failure of this step, not the build's cancel.
              if (e instanceof CancelledError && timeout?.aborted && !signal.aborted)
                throw new LimitReachedError(`step timeout ${formatDuration(options.stepTimeoutMs!)} reached`, null, 'SIGKILL');
              throw e;
            });
          ok = true;
        } finally {
          output?.end();
          for (const view of views) await view.release(ok);
        }
      },
      masker,
      diskBytes === undefined ? {} : { diskBytes },
    );
    return id;
  }

  private async copyStep(
    op: CopyOp,
    stage: string,
    ctx: BuildContext,
    parent: string,
    builds: ReadonlyMap<string, Promise<string>>,
    options: BuildScope,
  ): Promise<string> {
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
      // A child build's output is a fresh snapshot every time: only the context is worth a cache.
      const digests = op.from.kind === 'context' ? options.contextDigests : undefined;
      try {
        items = [];
        for (const src of op.src) items.push(await generateManifest(srcDir, src, op.exclude, digests));
        id = copyStepKey(ctx, parent, items, op.dst).id;
      } catch (e) {
        if (e instanceof ManifestError || e instanceof CopyError) throw new BuildError(`${printOp(op)}: ${e.message}`);
        throw e;
      }
      await this.step(printOp(op), stage, id, parent, options, async (dir, log, signal) => {
        // Loaded when a copy really runs, not at start: a cached build never needs tar-stream.
        const { copyTarStream } = await import('./tar-transfer.js');
        await this.options.sandbox.run(
          {
            argv: ['tar', '-xf', '-'],
            cwd: '/',
            env: [['PATH', '/bin:/usr/bin']],
            user: ROOT_UNIX,
            hostname: HOSTNAME,
            network: [],
            mounts: [],
            secrets: [],
          },
          join(dir, 'rootfs'),
          { stdin: copyTarStream(srcDir, items, dst, ctx.user), onOutput: (chunk) => log.write(chunk), signal },
        );
      });
      return id;
    });
  }

  /**
   * One snapshot step: replay it from the store, or have it built once for every
   * concurrent requester. `work` fills `dir` (rootfs already cloned from `parent`) and
   * writes the log.
   */
  private async step(
    what: string,
    stage: string,
    id: string,
    parent: string | undefined,
    options: BuildScope,
    work: (dir: string, log: StepLog, signal: AbortSignal) => Promise<void>,
    /** Masks the replay too: a log stored before masking existed may hold the values. */
    masker?: SecretMasker,
    /** What the store holds the snapshot to while `work` runs. */
    limits: BuildLimits = {},
    /** A stream the store may receive the result from instead of running `work` (StepWork.stream). */
    stream?: StepWork['stream'],
  ): Promise<void> {
    await options.lease.hold(id, options.signal);
    const started = Date.now();
    // The note that says how the step ended carries the step's event (what onStep is told).
    const done = (cached: boolean) => {
      const event: StepEvent = { id, op: what, stage, cached, ms: Date.now() - started };
      options.log(stepDone(cached ? `---> using ${JSON.stringify(id)} from cache` : `---> saved as ${JSON.stringify(id)}`, event));
      options.onStep?.(event);
    };
    if (await this.db.cached(id)) {
      await this.replay(id, options, masker);
      done(true);
      return;
    }
    const outcome = await this.db
      .build(id, parent, options.signal, {
        limits,
        stream,
        // One process runs a step; the others sharing the store wait and take its result.
        waiting: (holder) => options.log(note(`---> waiting for process ${pidOf(holder.owner)}, which is running this step`)),
        work,
        follow: async (log) => {
          for await (const chunk of log.tail()) {
            if (options.signal?.aborted) break;
            options.log({ tag: 'output', data: chunk });
          }
        },
      })
      .catch((e: unknown) => {
        if (e instanceof CancelledError || e instanceof BuildError) throw e;
        throw new BuildError(`${what} failed: ${e instanceof Error ? e.message : String(e)}`);
      });
    if (outcome === 'published elsewhere') {
      // Its output is this build's output too, as on any cache hit.
      await this.replay(id, options, masker);
      done(true);
      return;
    }
    done(false);
  }

  private async replay(id: string, options: BuildOptions, masker?: SecretMasker): Promise<void> {
    const output = masker?.stream((data) => options.log({ tag: 'output', data }));
    for await (const chunk of this.store.log(id)) {
      if (output) output.write(chunk);
      else options.log({ tag: 'output', data: chunk });
    }
    output?.end();
  }

  /**
   * Deletes a snapshot and everything built on it (children first), unless a running
   * build of any process stands on one of them (SnapshotInUseError).
   */
  delete(id: string, log?: (line: string) => void): Promise<void> {
    return this.db.delete(id, log);
  }

  /** Deletes up to `limit` snapshots last used before `before`, least recently used leaves first (DbStore.prune). */
  prune(before: number, limit: number, log?: (line: string) => void): Promise<string[]> {
    return this.db.prune(before, limit, log);
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
    const spec: Spec = {
      childBuilds: [],
      from: image,
      ops: [
        { op: 'shell', args: ['/bin/sh', '-c'] },
        { op: 'run', cache: [], network: [], secrets: [], shell: 'echo healthcheck' },
      ],
    };
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
