import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/main.js';

const REPO = join(import.meta.dirname, '../../..');
const MATRIX = join(REPO, 'infra/images');
// The reviewed plan of infra/images (apps/base-image-builder/test/matrix.test.ts keeps it).
const GOLDEN = join(REPO, 'apps/base-image-builder/test/golden/images-plan.txt');

async function cairn(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => void (out += s), err: (s) => void (err += s), readStdin: async () => '' });
  return { code, out, err };
}

describe('cairn images plan', () => {
  it('prints the matrix of infra/images as reviewed', async () => {
    expect(await cairn(['images', 'plan', '--matrix', MATRIX])).toEqual({ code: 0, out: await readFile(GOLDEN, 'utf8'), err: '' });
  });

  it('--json gives every image with its spec digest, in build order', async () => {
    const r = await cairn(['images', 'plan', '--matrix', MATRIX, '--json']);
    const rows = JSON.parse(r.out) as { name: string; from: string; specDigest: string }[];
    expect(rows.map((row) => `${row.name} <- ${row.from}`)).toEqual([
      'busybox:latest <- busybox-static',
      'debian:bookworm <- debootstrap bookworm minbase',
      'debian:bookworm-build <- debian:bookworm',
      'ocaml:4.13 <- debian:bookworm-build',
    ]);
    expect(rows.every((row) => /^sha256:[0-9a-f]{64}$/.test(row.specDigest))).toBe(true);
  });

  it('exits 1 naming the file and field of a bad matrix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-matrix-'));
    await writeFile(join(dir, 'matrix.yaml'), 'images:\n  - { name: "x:1", bootstrap: { kind: busybox-static }, spec: x.spec }\n');
    const r = await cairn(['images', 'plan', '--matrix', dir]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${dir}/matrix.yaml: images[0] (x:1).spec: cannot read ${dir}/x.spec (ENOENT)`);
  });

  it('rebuild wants names or --all', async () => {
    const r = await cairn(['images', 'rebuild']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('name the images, or give --all');
  });
});
