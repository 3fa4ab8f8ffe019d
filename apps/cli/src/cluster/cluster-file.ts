/**
 * How the other commands find the cluster `cairn up` started: it writes where its NATS
 * listens to `$CAIRN_HOME/cluster.json` (~/.cairn by default) and removes the file when
 * it stops; `cairn submit/logs/status/admin` read it when neither --nats nor CAIRN_NATS
 * says where to go. A file left by a `cairn up` that was killed names a process that is
 * gone, and is ignored.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface ClusterFile {
  readonly natsUrl: string;
  /** The `cairn up` process. */
  readonly pid: number;
  readonly dataDir: string;
  readonly dashboard?: string;
  /** The registry the base images are published to (cairn up's own, or CAIRN_REGISTRY). */
  readonly registry?: string;
  readonly pool: string;
  readonly startedAt: number;
  /** With cairn up's own NATS: the dir of its users' password files (NAME.password), never a password itself. */
  readonly natsPasswords?: string;
  /** With cairn up's own NATS: the user `cairn admin` connects as. */
  readonly natsAdmin?: string;
}

export function clusterFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.CAIRN_HOME ?? join(homedir(), '.cairn'), 'cluster.json');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The running cluster's file, or undefined (none, unreadable, or its `cairn up` is gone). */
export function readClusterFile(env: NodeJS.ProcessEnv = process.env): ClusterFile | undefined {
  try {
    const file = JSON.parse(readFileSync(clusterFilePath(env), 'utf8')) as ClusterFile;
    return typeof file.natsUrl === 'string' && Number.isInteger(file.pid) && alive(file.pid) ? file : undefined;
  } catch {
    return undefined;
  }
}

/** Written whole (a reader never sees half a file), in the well-known place and in the data dir. */
export async function writeClusterFile(info: ClusterFile, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const body = `${JSON.stringify(info, null, 2)}\n`;
  for (const path of [clusterFilePath(env), join(info.dataDir, 'cluster.json')]) {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(`${path}.${process.pid}`, body);
    await rename(`${path}.${process.pid}`, path);
  }
}

/** Removes the files if they still describe this process's cluster (another `cairn up` may have started since). */
export async function removeClusterFile(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  for (const path of [clusterFilePath(env), join(dataDir, 'cluster.json')]) {
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    try {
      if ((JSON.parse(text) as ClusterFile).pid !== process.pid) continue;
    } catch {
      continue;
    }
    await rm(path, { force: true });
  }
}
