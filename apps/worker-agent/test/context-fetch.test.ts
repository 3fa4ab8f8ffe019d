import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pack } from 'tar-stream';
import { ensureJetStream, putBlob } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNatsWithClient, type NatsWithClient } from '../../../test/support/nats.js';
import { fetchContext } from '../src/context-fetch.js';

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device'; linkname?: string; text?: string; mode?: number };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    const { text, ...header } = e;
    await new Promise<void>((resolve, reject) => p.entry({ mode: 0o644, ...header }, text ?? '', (err) => (err ? reject(err) : resolve())));
  }
  p.finalize();
  const parts: Buffer[] = [];
  for await (const part of p) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Contexts from a real JetStream blob store, hostile ones included. */
describe('fetching a build context', () => {
  let bus: NatsWithClient;
  let nc: NatsConnection;
  let dir: string;

  beforeAll(async () => {
    bus = await startNatsWithClient('test');
    ({ nc } = bus);
    await ensureJetStream(nc);
    dir = await mkdtemp(join(tmpdir(), 'cairn-context-test-'));
  });
  afterAll(async () => {
    await bus?.close();
    await rm(dir, { recursive: true, force: true });
  });

  let n = 0;
  async function fetchTar(entries: Entry[]): Promise<string> {
    const tar = await tarOf(entries);
    const { sha256 } = await putBlob(nc, 'contexts', 'alice', [tar]);
    const target = join(dir, `ctx-${++n}`);
    await fetchContext(nc, { store: 'contexts', owner: 'alice', sha256 }, target, dir);
    return target;
  }

  it('extracts files, directories, symlinks and hard links, without set-id bits', async () => {
    const out = await fetchTar([
      { name: 'src/', type: 'directory', mode: 0o755 },
      { name: 'src/main.c', text: 'int main;\n', mode: 0o4755 },
      { name: 'src/link', type: 'symlink', linkname: 'main.c' },
      { name: 'copy.c', type: 'link', linkname: 'src/main.c' },
    ]);
    expect(await readFile(join(out, 'src/main.c'), 'utf8')).toBe('int main;\n');
    expect(await readlink(join(out, 'src/link'))).toBe('main.c');
    expect(await readFile(join(out, 'copy.c'), 'utf8')).toBe('int main;\n');
    const { statSync } = await import('node:fs');
    expect(statSync(join(out, 'src/main.c')).mode & 0o7777).toBe(0o755);
    // The tar was a scratch file: gone.
    expect((await readdir(dir)).filter((f) => f.endsWith('.tar'))).toEqual([]);
  });

  it('refuses an entry that climbs out with ..', async () => {
    await expect(fetchTar([{ name: '../escaped.txt', text: 'x' }])).rejects.toThrow(
      /entry "\.\.\/escaped\.txt" would land outside the context directory: refused/,
    );
    await expect(readFile(join(dir, 'escaped.txt'))).rejects.toThrow(/ENOENT/);
    await expect(fetchTar([{ name: 'a/../../escaped2.txt', text: 'x' }])).rejects.toThrow(/would land outside/);
  });

  it('refuses an absolute entry name', async () => {
    await expect(fetchTar([{ name: `${dir}/absolute.txt`, text: 'x' }])).rejects.toThrow(/would land outside the context directory/);
    await expect(readFile(join(dir, 'absolute.txt'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses a symlink planted under another symlink, which would be created outside', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'cairn-outside-'));
    try {
      await expect(
        fetchTar([
          { name: 'door', type: 'symlink', linkname: outside },
          { name: 'door/planted', type: 'symlink', linkname: '/etc/passwd' },
        ]),
      ).rejects.toThrow(/"door\/planted" lies under the symlink "door": refused/);
      expect(await readdir(outside)).toEqual([]);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('refuses device files', async () => {
    await expect(fetchTar([{ name: 'dev-null', type: 'character-device' }])).rejects.toThrow(
      /entry "dev-null" is a character-device; only files, directories and links are allowed/,
    );
  });

  it('names a context that was never uploaded', async () => {
    const sha256 = '0'.repeat(64);
    await expect(fetchContext(nc, { store: 'contexts', owner: 'alice', sha256 }, join(dir, 'none'), dir)).rejects.toThrow(
      `context sha256:${sha256} of client alice: not found (was it uploaded?)`,
    );
  });
});
