import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Builder } from '@cairn/builder';
import { OciLayoutFetcher } from '@cairn/fetcher';
import { createSandbox } from '@cairn/sandbox';
import { parseStoreSpec, type Store } from '@cairn/store';
import { busyboxImage } from '../test/support/images.js';
import { withBtrfs, withXfs } from '../test/support/filesystems.js';

/** A fresh store of `kind` on a real filesystem, a busybox image and an engine over them. */
export interface BenchEnv {
  dir: string;
  store: Store;
  images: string;
  stateDir: string;
  builder: Builder;
  cleanup(): Promise<void>;
}

export const BASE = 'cairn/busybox:latest';

export async function benchEnv(kind: string, runtime: 'runc' | 'crun' = 'runc', fastSync = false): Promise<BenchEnv> {
  const dir = await mkdtemp(join(tmpdir(), `cairn-bench-${kind}-`));
  const fs = kind === 'btrfs' ? await withBtrfs() : kind === 'xfs' ? await withXfs() : undefined;
  const store = parseStoreSpec(`${kind}:${fs ? fs.path : join(dir, 'store')}`);
  const images = join(dir, 'images');
  await busyboxImage(images, BASE);
  const stateDir = join(dir, 'state');
  const builder = await Builder.open({
    store,
    sandbox: createSandbox(runtime, { stateDir, fastSync }),
    fetcher: new OciLayoutFetcher(images),
    dbPath: join(dir, 'db.sqlite'),
    secretKey: 'bench',
  });
  return {
    dir,
    store,
    images,
    stateDir,
    builder,
    cleanup: async () => {
      builder.close();
      await fs?.cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const ms = (n: number) => `${n.toFixed(1)} ms`;
