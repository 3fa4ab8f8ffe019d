import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toMachine } from '@cairn/spec';
import { baseId, copyHashInput, copyId, generateManifest, ManifestError, type CopyInput, type Manifest } from '../src/index.js';

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const EXCLUDE = ['.git', '_build'];

// Names whose UTF-8 byte order differs from both locale order ('a' before 'B') and
// JavaScript's UTF-16 order (U+1F600 is a surrogate pair, below U+FF21 in UTF-16).
const FULLWIDTH_A = '\uFF21';
const GRIN = '\u{1F600}';

let ctx: string;
const at = (...p: string[]) => join(ctx, ...p);

async function put(rel: string, content: string, mode = 0o644): Promise<void> {
  await mkdir(join(ctx, rel, '..'), { recursive: true });
  await writeFile(at(rel), content);
  await chmod(at(rel), mode);
}

beforeAll(async () => {
  ctx = await mkdtemp(join(tmpdir(), 'cairn-manifest-'));
  await put('a.txt', 'hello\n');
  await put('B', 'upper\n');
  await put('é', 'accent\n');
  await put(FULLWIDTH_A, 'fullwidth\n');
  await put(GRIN, 'grin\n');
  await put('run.sh', '#!/bin/sh\necho hi\n', 0o755);
  await put('.git/HEAD', 'ref: refs/heads/main\n');
  await put('sub/c.txt', 'c\n');
  await put('sub/.git/config', '[core]\n');
  await put('sub/deep/d.txt', 'd\n');
  await put('sub/deep/.git', 'gitdir: elsewhere\n');
  await put('sub/deep/_build/out.o', 'object\n');
  await symlink('c.txt', at('sub/to-c'));
  await symlink('a.txt', at('link-file'));
  await symlink('sub', at('link-dir'));
  await symlink('nowhere/at/all', at('dangling'));
});

afterAll(async () => {
  await rm(ctx, { recursive: true, force: true });
});

const subManifest = (prefix: string): Manifest => ({
  kind: 'dir',
  path: prefix,
  children: [
    { kind: 'file', path: `${prefix}/c.txt`, sha256: sha('c\n') },
    {
      kind: 'dir',
      path: `${prefix}/deep`,
      children: [{ kind: 'file', path: `${prefix}/deep/d.txt`, sha256: sha('d\n') }],
    },
    { kind: 'symlink', path: `${prefix}/to-c`, target: 'c.txt' },
  ],
});

describe('generateManifest over a real tree', () => {
  it('lists the whole context for ".", in byte order, with excludes at every depth', async () => {
    const m = await generateManifest(ctx, '.', EXCLUDE);
    expect(m).toEqual({
      kind: 'dir',
      path: '',
      children: [
        { kind: 'file', path: 'B', sha256: sha('upper\n') },
        { kind: 'file', path: 'a.txt', sha256: sha('hello\n') },
        { kind: 'symlink', path: 'dangling', target: 'nowhere/at/all' },
        { kind: 'symlink', path: 'link-dir', target: 'sub' },
        { kind: 'symlink', path: 'link-file', target: 'a.txt' },
        { kind: 'file', path: 'run.sh', sha256: sha('#!/bin/sh\necho hi\n') },
        subManifest('sub'),
        { kind: 'file', path: 'é', sha256: sha('accent\n') },
        { kind: 'file', path: FULLWIDTH_A, sha256: sha('fullwidth\n') },
        { kind: 'file', path: GRIN, sha256: sha('grin\n') },
      ],
    });
  });

  it('keeps excluded names when nothing is excluded', async () => {
    const m = await generateManifest(ctx, 'sub', []);
    expect(m.kind === 'dir' && m.children.map((c) => c.path)).toEqual(['sub/.git', 'sub/c.txt', 'sub/deep', 'sub/to-c']);
  });

  it('ignores leading "/" and "." components and empty ones', async () => {
    for (const src of ['sub', './sub', '/sub', 'sub/', '//./sub/.', './/sub']) {
      expect(await generateManifest(ctx, src, EXCLUDE)).toEqual(subManifest('sub'));
    }
    for (const src of ['.', '', '/', './', '/./']) {
      expect((await generateManifest(ctx, src, EXCLUDE)).path).toBe('');
    }
    expect(await generateManifest(ctx, './sub/./deep/d.txt', [])).toEqual({
      kind: 'file',
      path: 'sub/deep/d.txt',
      sha256: sha('d\n'),
    });
  });

  it('takes a symlink as the last component as a symlink, even to a dir or nowhere', async () => {
    expect(await generateManifest(ctx, 'link-dir', [])).toEqual({ kind: 'symlink', path: 'link-dir', target: 'sub' });
    expect(await generateManifest(ctx, 'link-file', [])).toEqual({ kind: 'symlink', path: 'link-file', target: 'a.txt' });
    expect(await generateManifest(ctx, 'dangling', [])).toEqual({
      kind: 'symlink',
      path: 'dangling',
      target: 'nowhere/at/all',
    });
  });

  it('only excludes below the source, as OBuilder does', async () => {
    const m = await generateManifest(ctx, '.git', EXCLUDE);
    expect(m).toEqual({
      kind: 'dir',
      path: '.git',
      children: [{ kind: 'file', path: '.git/HEAD', sha256: sha('ref: refs/heads/main\n') }],
    });
  });

  it('streams files larger than one read chunk', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    await writeFile(at('big.bin'), big);
    try {
      expect(await generateManifest(ctx, 'big.bin', [])).toEqual({ kind: 'file', path: 'big.bin', sha256: sha(big) });
    } finally {
      await rm(at('big.bin'));
    }
  });
});

describe('generateManifest errors', () => {
  const fails = async (src: string, message: string | RegExp, path?: string) => {
    const err = await generateManifest(ctx, src, EXCLUDE).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).message).toMatch(message);
    if (path !== undefined) expect((err as ManifestError).path).toBe(path);
  };

  it('rejects ".." anywhere', async () => {
    await fails('..', "can't use .. in source paths", '..');
    await fails('sub/../a.txt', "can't use .. in source paths", 'sub/../a.txt');
    await fails('sub/deep/..', "can't use .. in source paths");
  });

  it('reports a missing path', async () => {
    await fails('nope', 'source path "nope" not found in the build context', 'nope');
    await fails('/sub/nope/x', 'source path "/sub/nope/x" not found in the build context');
    await fails('sub/nope', 'source path "sub/nope" not found in the build context');
  });

  it('rejects a regular file in the middle', async () => {
    await fails('a.txt/x', 'not a directory: a.txt', 'a.txt');
    await fails('./sub/c.txt/x', 'not a directory: sub/c.txt', 'sub/c.txt');
  });

  it('never follows a symlink in the middle', async () => {
    await fails('link-dir/c.txt', 'not a regular file or directory: link-dir', 'link-dir');
    await fails('sub/to-c/x', 'not a regular file or directory: sub/to-c', 'sub/to-c');
    await fails('dangling/x', 'not a regular file or directory: dangling', 'dangling');
  });

  it('reports a missing build context', async () => {
    const err = await generateManifest(join(ctx, 'no-such-dir'), '.', []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManifestError);
    expect((err as Error).message).toBe('source path "." not found in the build context');
  });

  it.runIf(process.platform === 'linux')('rejects a fifo, naming it', async () => {
    await mkdir(at('special'));
    try {
      execFileSync('mkfifo', [at('special', 'pipe')]);
      await fails('special/pipe', "can't copy fifo: special/pipe", 'special/pipe');
      await fails('special', "can't copy fifo: special/pipe", 'special/pipe');
    } finally {
      await rm(at('special'), { recursive: true });
    }
  });

  it.runIf(process.platform === 'linux')('rejects a file name that is not UTF-8', async () => {
    await mkdir(at('bad'));
    try {
      await writeFile(Buffer.concat([Buffer.from(at('bad') + '/'), Buffer.from([0x66, 0xff])]), 'x');
      await fails('bad', 'file name is not valid UTF-8: bad/<hex 66ff>');
    } finally {
      await rm(at('bad'), { recursive: true });
    }
  });
});

describe('copy IDs over a real tree', () => {
  const base = baseId('base');
  const user = { kind: 'unix', uid: 1000, gid: 1000 } as const;
  const copyOf = async (srcs: string[], dst: string, exclude = EXCLUDE): Promise<CopyInput> => ({
    base,
    user,
    items: await Promise.all(srcs.map((s) => generateManifest(ctx, s, exclude))),
    dst,
  });

  it('matches a hash input written out by hand', async () => {
    // Written independently of the code: OBuilder's copy_details for `(copy (src sub) (dst /app/)
    // (exclude .git _build))` as user 1000:1000 on top of `(from base)`.
    const literal =
      '((base cae662172fd450bb0cd710a769079c05bfc5d8e35efa6576edc7d0377afdd4a2)' +
      '(user((uid 1000)(gid 1000)))' +
      '(op(Copy_items(((Dir(sub(' +
      '(File(sub/c.txt a3a5e715f0cc574a73c3f9bebb6bc24f32ffd5b67b387244c2c909da779a1478))' +
      '(Dir(sub/deep((File(sub/deep/d.txt 8d74beec1be996322ad76813bafb92d40839895d6dd7ee808b17ca201eac98be)))))' +
      '(Symlink(sub/to-c c.txt))' +
      '))))/app/))))';
    const input = await copyOf(['sub'], '/app/');
    expect(toMachine(copyHashInput(input))).toBe(literal);
    expect(copyId(input)).toBe(createHash('sha256').update(literal).digest('hex'));
    expect(copyId(input)).toBe('58c018b870185379343c2b0b23d6e2264a84d93d337e24012c6a2ae5e6b77f5a');
  });

  it('is the same for every spelling of the same source', async () => {
    const ids = await Promise.all(['sub', './sub', '/sub', 'sub/'].map(async (s) => copyId(await copyOf([s], '/app/'))));
    expect(new Set(ids).size).toBe(1);
  });

  it('ignores modes and times but not content', async () => {
    const before = copyId(await copyOf(['.'], '/app/'));
    await chmod(at('sub/c.txt'), 0o755);
    await chmod(at('run.sh'), 0o600);
    await chmod(at('sub/deep'), 0o700);
    await utimes(at('a.txt'), new Date(1_000_000_000), new Date(1_000_000_000));
    await utimes(at('sub'), new Date(2_000_000_000), new Date(2_000_000_000));
    expect(copyId(await copyOf(['.'], '/app/'))).toBe(before);

    await writeFile(at('sub/deep/d.txt'), 'D\n');
    try {
      expect(copyId(await copyOf(['.'], '/app/'))).not.toBe(before);
    } finally {
      await writeFile(at('sub/deep/d.txt'), 'd\n');
      await chmod(at('sub/c.txt'), 0o644);
      await chmod(at('run.sh'), 0o755);
      await chmod(at('sub/deep'), 0o755);
    }
    expect(copyId(await copyOf(['.'], '/app/'))).toBe(before);
  });

  it('changes with a symlink target, an excluded name set or a renamed file', async () => {
    const before = copyId(await copyOf(['.'], '/app/'));
    expect(copyId(await copyOf(['.'], '/app/', ['.git']))).not.toBe(before);
    await rm(at('link-file'));
    await symlink('B', at('link-file'));
    try {
      expect(copyId(await copyOf(['.'], '/app/'))).not.toBe(before);
    } finally {
      await rm(at('link-file'));
      await symlink('a.txt', at('link-file'));
    }
    expect(copyId(await copyOf(['.'], '/app/'))).toBe(before);
  });

  it('chooses Copy_item or Copy_items by the trailing slash', async () => {
    const single = toMachine(copyHashInput(await copyOf(['a.txt'], '/app/greeting')));
    expect(single).toContain(`(op(Copy_item((File(a.txt ${sha('hello\n')}))/app/greeting)))`);
    const into = toMachine(copyHashInput(await copyOf(['a.txt', 'B'], '/app/')));
    expect(into).toContain(`(op(Copy_items(((File(a.txt ${sha('hello\n')}))(File(B ${sha('upper\n')})))/app/)))`);
    await expect(copyOf(['a.txt', 'B'], '/app').then(copyId)).rejects.toThrow(/copying several items needs a destination ending with '\/', got "\/app"/);
  });
});
