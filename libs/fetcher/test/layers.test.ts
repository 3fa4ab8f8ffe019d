import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { applyLayer, FetchError } from '@cairn/fetcher';
import { sha256Digest } from '../src/digest.js';
import { streamOf, tarball, type Member } from './tar-builder.js';

let work: string;
let rootfs: string;
const at = (p: string) => join(rootfs, p);
const exists = (p: string) =>
  lstat(at(p)).then(
    () => true,
    () => false,
  );
const apply = (members: readonly Member[]) => applyLayer(rootfs, streamOf(gzipSync(tarball(members))));

beforeEach(async () => {
  work ??= await mkdtemp(join(tmpdir(), 'cairn-layers-'));
  rootfs = await mkdtemp(join(work, 'rootfs-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const lowerLayer: Member[] = [
  { path: 'etc/', type: 'dir' },
  { path: 'etc/gone', content: 'old' },
  { path: 'etc/keep', content: 'kept' },
  { path: 'cache/', type: 'dir' },
  { path: 'cache/a', content: 'a' },
  { path: 'cache/sub/', type: 'dir' },
  { path: 'cache/sub/b', content: 'b' },
  { path: 'dir/', type: 'dir' },
  { path: 'dir/x', content: 'x' },
];

describe('applyLayer', () => {
  it('restores ownership, modes, setuid, symlinks, hard links, devices and fifos', async () => {
    await apply([
      { path: 'home/', type: 'dir' },
      { path: 'home/user/', type: 'dir', uid: 1000, gid: 1000, mode: 0o750 },
      { path: 'home/user/notes', content: 'hi', uid: 1000, gid: 1000, mode: 0o640 },
      { path: 'bin/', type: 'dir' },
      { path: 'bin/su', content: 'su', mode: 0o4755 },
      { path: 'bin/also-su', type: 'hardlink', linkPath: 'bin/su' },
      { path: 'bin/sh', type: 'symlink', linkPath: 'su' },
      { path: 'etc/', type: 'dir' },
      { path: 'etc/mtab', type: 'symlink', linkPath: '/proc/mounts' },
      { path: 'dev/', type: 'dir' },
      { path: 'dev/null', type: 'char', device: [1, 3], mode: 0o666 },
      { path: 'run/', type: 'dir' },
      { path: 'run/pipe', type: 'fifo', mode: 0o600 },
    ]);
    const notes = await stat(at('home/user/notes'));
    expect([notes.uid, notes.gid, notes.mode & 0o7777]).toEqual([1000, 1000, 0o640]);
    expect((await stat(at('home/user'))).mode & 0o7777).toBe(0o750);
    expect((await stat(at('bin/su'))).mode & 0o7777).toBe(0o4755);
    expect((await stat(at('bin/also-su'))).ino).toBe((await stat(at('bin/su'))).ino);
    expect(await readlink(at('bin/sh'))).toBe('su');
    expect(await readlink(at('etc/mtab'))).toBe('/proc/mounts');
    const dev = await lstat(at('dev/null'));
    expect(dev.isCharacterDevice()).toBe(true);
    expect(dev.rdev).toBe((1 << 8) | 3);
    expect((await lstat(at('run/pipe'))).isFIFO()).toBe(true);
  });

  it('a whiteout deletes lower content even when it comes after the same-layer file it would hide', async () => {
    await apply(lowerLayer);
    await apply([{ path: 'dir/', type: 'dir' }, { path: 'dir/fresh', content: 'new' }, { path: '.wh.dir' }, { path: 'etc/.wh.gone' }]);
    expect(await readdir(at('dir'))).toEqual(['fresh']);
    expect(await exists('etc/gone')).toBe(false);
    expect(await readFile(at('etc/keep'), 'utf8')).toBe('kept');
    expect(await exists('.wh.dir')).toBe(false);
    expect(await exists('etc/.wh.gone')).toBe(false);
  });

  it("an opaque whiteout empties the lower directory and keeps the layer's own files", async () => {
    await apply(lowerLayer);
    await apply([{ path: 'cache/', type: 'dir' }, { path: 'cache/new', content: 'n' }, { path: 'cache/.wh..wh..opq' }]);
    expect(await readdir(at('cache'))).toEqual(['new']);
  });

  it('a file replaces a lower directory and a directory replaces a lower file', async () => {
    await apply(lowerLayer);
    await apply([
      { path: 'dir', content: 'now a file' },
      { path: 'etc/keep/', type: 'dir' },
      { path: 'etc/keep/inner', content: 'i' },
    ]);
    expect(await readFile(at('dir'), 'utf8')).toBe('now a file');
    expect(await readFile(at('etc/keep/inner'), 'utf8')).toBe('i');
  });

  it('follows relative symlinks that stay inside the rootfs', async () => {
    await apply([
      { path: 'usr/', type: 'dir' },
      { path: 'usr/lib/', type: 'dir' },
      { path: 'lib', type: 'symlink', linkPath: 'usr/lib' },
    ]);
    await apply([{ path: 'lib/libc.so', content: 'c' }]);
    expect(await readFile(at('usr/lib/libc.so'), 'utf8')).toBe('c');
    expect((await lstat(at('lib'))).isSymbolicLink()).toBe(true);
  });

  it('applies gzip, zstd and uncompressed layers alike', async () => {
    const plain = tarball([{ path: 'plain', content: 'p' }]);
    await applyLayer(rootfs, streamOf(plain));
    const zstd = execFileSync('zstd', ['-q', '-c'], { input: tarball([{ path: 'z', content: 'zstd' }]) });
    await applyLayer(rootfs, streamOf(zstd));
    expect(await readFile(at('plain'), 'utf8')).toBe('p');
    expect(await readFile(at('z'), 'utf8')).toBe('zstd');
  });

  it('checks the layer digest before unpacking anything', async () => {
    const layer = gzipSync(tarball([{ path: 'evil', content: 'e' }]));
    const claimed = sha256Digest('something else');
    const error = await applyLayer(rootfs, streamOf(layer), { digest: claimed }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toContain(`layer ${claimed} is corrupt`);
    expect(await readdir(rootfs)).toEqual([]);
  });

  describe('refuses entries that escape the rootfs', () => {
    const refused = async (members: readonly Member[], why: string | RegExp) => {
      const error = await apply(members).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FetchError);
      expect((error as FetchError).message).toMatch(why);
    };
    const outside = join(tmpdir(), `cairn-outside-${process.pid}`);

    afterAll(async () => {
      await rm(outside, { recursive: true, force: true });
    });

    it("with '..' in a name", async () => {
      await refused([{ path: 'a/../../etc/passwd', content: 'x' }], /climbs out with '\.\.'/);
    });

    it('through a lower symlink to an absolute path', async () => {
      await mkdir(outside, { recursive: true });
      await apply([
        { path: 'var/', type: 'dir' },
        { path: 'var/run', type: 'symlink', linkPath: outside },
      ]);
      await refused([{ path: 'var/run/pwned', content: 'x' }], /parent var\/run is a symlink to the absolute path/);
      expect(await readdir(outside)).toEqual([]);
    });

    it('through a symlink made earlier in the same layer', async () => {
      await refused(
        [
          { path: 'up', type: 'symlink', linkPath: '../../..' },
          { path: 'up/tmp/pwned', content: 'x' },
        ],
        /leads out/,
      );
    });

    it('through a hard link to a symlink that points outside', async () => {
      await mkdir(outside, { recursive: true });
      await apply([
        { path: 'a', type: 'symlink', linkPath: 'b' },
        { path: 'b', type: 'symlink', linkPath: outside },
      ]);
      await refused(
        [
          { path: 'h', type: 'hardlink', linkPath: 'a' },
          { path: 'h/pwned', content: 'x' },
        ],
        /absolute path/,
      );
      expect(await readdir(outside)).toEqual([]);
    });

    it('with a hard link whose target lies behind an absolute symlink', async () => {
      await mkdir(outside, { recursive: true });
      await writeFile(join(outside, 'secret'), 'host secret');
      await symlink(outside, at('host'));
      await refused([{ path: 'leak', type: 'hardlink', linkPath: 'host/secret' }], /absolute path/);
      expect(await exists('leak')).toBe(false);
    });

    it('with a whiteout behind a symlink that points outside', async () => {
      await mkdir(join(outside, 'precious'), { recursive: true });
      await apply([{ path: 'link', type: 'symlink', linkPath: outside }]);
      await refused([{ path: 'link/.wh.precious' }], /absolute path/);
      expect(await readdir(outside)).toContain('precious');
    });
  });
});
