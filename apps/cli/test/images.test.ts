import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjects, type BaseImageStatus } from '@cairn/contracts';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
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

// What the base-image-builder answers on admin.images: one image of each kind the dashboard shows.
const D = (c: string) => `sha256:${c.repeat(64)}`;
const T = (iso: string) => Date.parse(iso);
const ROWS: BaseImageStatus[] = [
  {
    name: 'busybox:latest',
    tags: ['latest', '1.36'],
    state: 'published',
    why: 'inputs unchanged',
    digest: D('a'),
    publishedAt: T('2026-12-07T05:00:00.123Z'),
    inputs: D('1'),
    nextRunAt: T('2026-12-14T03:00:00Z'),
    schedule: '0 3 * * 1',
    history: [
      { digest: D('a'), at: T('2026-12-07T05:00:00.123Z'), job: 'j-new' },
      { digest: D('b'), at: T('2026-11-30T03:10:00Z'), job: 'j-old' },
    ],
  },
  {
    name: 'debian:bookworm',
    tags: ['bookworm'],
    state: 'retrying',
    why: 'attempt 2 at 2026-12-07T06:30:00.000Z',
    digest: D('c'),
    publishedAt: T('2026-12-01T03:00:00Z'),
    inputs: D('2'),
    nextRunAt: T('2026-12-14T03:00:00Z'),
    schedule: '0 3 * * 1',
    failure: { reason: 'job j-bad failed: exit 3', at: T('2026-12-07T06:00:00Z'), count: 1, retryAt: T('2026-12-07T06:30:00Z'), job: 'j-bad' },
    history: [{ digest: D('c'), at: T('2026-12-01T03:00:00Z') }],
  },
  {
    name: 'ocaml:4.13',
    tags: ['4.13'],
    state: 'failed',
    why: 'failed 3 times: job j-worse failed',
    schedule: '0 3 * * 1',
    failure: { reason: 'job j-worse failed', at: T('2026-12-07T06:10:00Z'), count: 3, job: 'j-worse' },
    history: [],
  },
  {
    name: 'tools:1',
    tags: ['1'],
    state: 'building',
    why: 'attempt 1 in flight (job j-now)',
    job: 'j-now',
    schedule: '0 3 * * 1',
    history: [],
  },
];

describe('cairn images status', () => {
  let nats: RunningNats;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    // A stand-in for the base-image-builder: the CLI is what is tested here.
    nc.subscribe(subjects.admin('images'), { callback: (_e, msg) => void msg.respond(JSON.stringify({ response: { ok: true, value: ROWS } })) });
    await nc.flush();
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });
  const status = (...args: string[]) => cairn(['images', 'status', '--nats', nats.url, ...args]);

  it('a line per image: state, digest, published, last build and its job, next run, why', async () => {
    expect(await status()).toEqual({
      code: 0,
      err: '',
      out: [
        'IMAGE            STATE      DIGEST        PUBLISHED             LAST BUILD       NEXT RUN              WHY',
        'busybox:latest   published  aaaaaaaaaaaa  2026-12-07T05:00:00Z  j-new published  2026-12-14T03:00:00Z  inputs unchanged',
        'debian:bookworm  retrying   cccccccccccc  2026-12-01T03:00:00Z  j-bad failed     2026-12-14T03:00:00Z  attempt 2 at 2026-12-07T06:30:00.000Z',
        'ocaml:4.13       failed     -             -                     j-worse failed   -                     failed 3 times: job j-worse failed',
        'tools:1          building   -             -                     j-now building   -                     attempt 1 in flight (job j-now)',
        '',
      ].join('\n'),
    });
  });

  it('named images in full: tags, schedule, failure and retry, every digest with its build', async () => {
    const r = await status('busybox:latest', 'debian:bookworm', 'ocaml:4.13');
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      [
        'busybox:latest',
        '  state         published: inputs unchanged',
        '  tags          latest, 1.36',
        `  digest        ${D('a')}`,
        '  published     2026-12-07T05:00:00Z',
        '  last build    j-new published',
        '  schedule      0 3 * * 1 (UTC)',
        '  next run      2026-12-14T03:00:00Z',
        `  inputs        ${D('1')}`,
        '  last failure  none of its current inputs',
        `  history       ${D('a')}  2026-12-07T05:00:00Z  job j-new`,
        `                ${D('b')}  2026-11-30T03:10:00Z  job j-old`,
        '',
        'debian:bookworm',
        '  state         retrying: attempt 2 at 2026-12-07T06:30:00.000Z',
        '  tags          bookworm',
        `  digest        ${D('c')}`,
        '  published     2026-12-01T03:00:00Z',
        '  last build    j-bad failed',
        '  schedule      0 3 * * 1 (UTC)',
        '  next run      2026-12-14T03:00:00Z',
        `  inputs        ${D('2')}`,
        '  last failure  2026-12-07T06:00:00Z job j-bad: job j-bad failed: exit 3',
        '                1 failed attempt; retry at 2026-12-07T06:30:00Z',
        `  history       ${D('c')}  2026-12-01T03:00:00Z  (job not recorded)`,
        '',
        'ocaml:4.13',
        '  state         failed: failed 3 times: job j-worse failed',
        '  tags          4.13',
        '  digest        not published',
        '  published     never',
        '  last build    j-worse failed',
        '  schedule      0 3 * * 1 (UTC)',
        '  next run      none',
        '  inputs        not computed yet',
        '  last failure  2026-12-07T06:10:00Z job j-worse: job j-worse failed',
        '                3 failed attempts; no retries left: waits for new inputs or a forced rebuild',
        '  history       never published',
        '',
      ].join('\n'),
    );
  });

  it('--json carries every field the dashboard shows; with names, only those images', async () => {
    const all = await status('--json');
    expect(all.code).toBe(0);
    expect(JSON.parse(all.out)).toEqual(ROWS);
    const one = JSON.parse((await status('--json', 'debian:bookworm')).out) as BaseImageStatus[];
    expect(one).toEqual([ROWS[1]]);
    expect(one[0]).toMatchObject({ nextRunAt: expect.any(Number), failure: { retryAt: expect.any(Number), job: 'j-bad' }, history: [{ digest: D('c') }] });
  });

  it('an image not in the matrix is an error naming the images there are', async () => {
    const r = await status('nope:1');
    expect(r.code).toBe(1);
    expect(r.err).toContain('not an image of the matrix: nope:1 (images: busybox:latest, debian:bookworm, ocaml:4.13, tools:1)');
  });
});
