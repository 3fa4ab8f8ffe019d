import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OciLayoutFetcher } from '@cairn/fetcher';
import { baseId } from '@cairn/hashing';
import { createSandbox, DockerSandbox, type Sandbox, type StepLimits } from '@cairn/sandbox';
import { parseSpec } from '@cairn/spec';
import { DockerStore, parseStoreSpec, ZfsStore, type Store } from '@cairn/store';
import { startDockerd } from '../../../test/support/dockerd.js';
import { busyboxImage } from '../../../test/support/images.js';
import { withBtrfs, withXfs } from '../../../test/support/filesystems.js';
import { withZfsPool } from '../../../test/support/zfs.js';
import { Builder, type LogEvent } from '../src/index.js';

/**
 * Every backend the engine must work on, each on a real filesystem: the store drivers with
 * runc (or crun), `zfs` on a file-backed zfs-fuse pool (`--store zfs:POOL/cairn`), and
 * `docker`, the Docker store with the docker sandbox on a private dockerd.
 */
export const STORE_KINDS = ['btrfs', 'overlayfs', 'rsync', 'rsync-hardlink', 'xfs', 'zfs', 'docker'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

export const BASE = 'cairn/busybox:latest';

/** A sandbox that counts the steps it really runs, so tests can tell a run from a replay. */
export class CountingSandbox implements Sandbox {
  readonly kind: string;
  runs = 0;
  constructor(private readonly inner: Sandbox) {
    this.kind = inner.kind;
  }
  init() {
    return this.inner.init();
  }
  run(...args: Parameters<Sandbox['run']>) {
    this.runs++;
    return this.inner.run(...args);
  }
}

export interface Harness {
  builder: Builder;
  store: Store;
  sandbox: CountingSandbox;
  dir: string;
  baseId: string;
  /** Reopens the engine on the same store, as a new `cairn` process would. */
  reopen(): Promise<Builder>;
  cleanup(): Promise<void>;
}

/** With `quotas`, a btrfs has qgroups on, which a disk limit needs; `limits` are the machine's. */
export async function makeHarness(
  kind: StoreKind,
  runtime: 'runc' | 'crun' = 'runc',
  sizeMb?: number,
  options: { quotas?: boolean; limits?: StepLimits } = {},
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), `cairn-engine-${kind}-`));
  const size = sizeMb === undefined ? {} : { sizeMb };
  const pool = kind === 'zfs' ? await withZfsPool(size) : undefined;
  const quotas = options.quotas ?? false;
  const fs = kind === 'btrfs' ? await withBtrfs({ ...size, quotas }) : kind === 'xfs' ? await withXfs(size) : pool;
  // A ZFS store is a dataset of the pool, mounted at /POOL/cairn.
  const root = pool ? `${pool.name}/cairn` : fs ? fs.path : join(dir, 'store');
  const images = join(dir, 'images');
  await busyboxImage(images, BASE);
  // The docker backend: one private dockerd per harness (images only from `docker import`).
  const dockerd = kind === 'docker' ? await startDockerd() : undefined;
  const store = dockerd ? new DockerStore(root, { socketPath: dockerd.socketPath }) : parseStoreSpec(`${kind}:${root}`);
  const sandbox = new CountingSandbox(
    dockerd ? new DockerSandbox({ socketPath: dockerd.socketPath }) : createSandbox(runtime, { stateDir: join(dir, 'runc-state') }),
  );
  const open = () =>
    Builder.open({
      store,
      sandbox,
      fetcher: new OciLayoutFetcher(images),
      dbPath: join(dir, 'db.sqlite'),
      secretKey: 'test-key',
      ...(options.limits ? { limits: options.limits } : {}),
    });
  const harness: Harness = {
    builder: await open(),
    store,
    sandbox,
    dir,
    baseId: baseId(BASE),
    reopen: async () => {
      harness.builder.close();
      harness.builder = await open();
      return harness.builder;
    },
    cleanup: async () => {
      harness.builder.close();
      await dockerd?.stop();
      // Results kept mounted for their grace would otherwise be unmounted at exit, from a destroyed pool.
      if (store instanceof ZfsStore) store.unmountIdle();
      await fs?.cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return harness;
}

/** A build's log, collected as text with tags, for assertions. */
export class CollectedLog {
  readonly events: LogEvent[] = [];
  readonly log = (e: LogEvent) => void this.events.push(e);
  get output(): string {
    return Buffer.concat(this.events.flatMap((e) => (e.tag === 'output' ? [e.data] : []))).toString();
  }
  get notes(): string[] {
    return this.events.flatMap((e) => (e.tag === 'note' ? [e.text] : []));
  }
  /** Resolves once the output contains `text`. */
  async waitFor(text: string, timeoutMs = 30_000): Promise<void> {
    const start = Date.now();
    while (!this.output.includes(text)) {
      if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${JSON.stringify(text)} in log:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** A spec on the busybox base image with a POSIX shell. */
export function spec(ops: string, childBuilds = '') {
  return parseSpec(`(${childBuilds} (from ${BASE}) (shell /bin/sh -c) ${ops})`);
}
