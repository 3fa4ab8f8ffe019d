import { mkdtemp, readlink, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { StepLog } from '../src/index.js';

/** The files this process has open under `dir` (Linux: /proc/self/fd). */
async function openUnder(dir: string): Promise<string[]> {
  const fds = await readdir('/proc/self/fd');
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((target) => target.startsWith(`${dir}/`));
}

it('once finished, keeps no file open in the step directory, and its readers still read every byte', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-step-'));
  try {
    const log = await StepLog.create(join(dir, 'log'));
    log.hold();
    const tail = log.tail();
    log.write(Buffer.from('first '));
    const first = await tail.next();
    log.write(Buffer.from('second'));
    await log.finish();
    // What a store publishing the directory needs (ZFS renames a dataset only once nothing is open in it).
    expect(await openUnder(dir)).toEqual([]);
    const rest: Uint8Array[] = [];
    for await (const chunk of tail) rest.push(chunk);
    expect(Buffer.concat([first.value as Uint8Array, ...rest]).toString()).toBe('first second');
    await log.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
