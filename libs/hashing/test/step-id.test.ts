import { createHash } from 'node:crypto';
import { describe, it, expect } from 'vitest';
import { toMachine } from '@cairn/spec';
import {
  baseId,
  CopyError,
  copyHashInput,
  copyId,
  copyStepKeyOf,
  manifestMachine,
  runHashInput,
  runId,
  secretDigest,
  sexpOfManifest,
  sha256Hex,
  stepKey,
  type CopyInput,
  type Manifest,
  type RunInput,
} from '../src/index.js';

const BASE = 'cae662172fd450bb0cd710a769079c05bfc5d8e35efa6576edc7d0377afdd4a2';
const ROOT = { kind: 'unix', uid: 0, gid: 0 } as const;

const appendStep: RunInput = {
  base: BASE,
  workdir: '/',
  user: ROOT,
  env: [['PATH', '/usr/bin:/usr/local/bin']],
  cmd: 'Append',
  shell: ['/usr/bin/env', 'bash', '-c'],
  network: [],
  secrets: [],
};

describe('the SPEC-LANGUAGE.md test vector', () => {
  it('names the base image by the hash of its name', () => {
    expect(baseId('base')).toBe(BASE);
  });

  it('gives the exact run hash input and ID', () => {
    expect(toMachine(runHashInput(appendStep))).toBe(
      '((base cae662172fd450bb0cd710a769079c05bfc5d8e35efa6576edc7d0377afdd4a2)(workdir /)' +
        '(user((uid 0)(gid 0)))(env((PATH /usr/bin:/usr/local/bin)))(cmd Append)' +
        '(shell(/usr/bin/env bash -c))(network())(mount_secrets()))',
    );
    expect(runId(appendStep)).toBe('a16a57b254ca5fe6ca5f34ab5ed0e56d9f38e13c62f7de9d876addd2061f678e');
  });
});

describe('sha256Hex', () => {
  it('hashes strings as UTF-8 and bytes as they are', () => {
    expect(sha256Hex('é')).toBe(sha256Hex(new Uint8Array([0xc3, 0xa9])));
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('run IDs', () => {
  const key = 'installation key';
  const withSecret = (value: string, k: string = key): RunInput => ({
    ...appendStep,
    secrets: [{ target: '/run/secrets/token', digest: secretDigest(k, value) }],
  });

  it('puts the keyed digest, not the value, in mount_secrets', () => {
    const digest = secretDigest(key, 'hunter2');
    expect(toMachine(runHashInput(withSecret('hunter2')))).toContain(`(mount_secrets(((value ${digest})(target /run/secrets/token))))`);
    expect(toMachine(runHashInput(withSecret('hunter2')))).not.toContain('hunter2');
  });

  it('changes when a secret is added, rotated or mounted elsewhere', () => {
    const ids = new Set([
      runId(appendStep),
      runId(withSecret('hunter2')),
      runId(withSecret('hunter3')),
      runId({ ...withSecret('hunter2'), secrets: [{ target: '/elsewhere', digest: secretDigest(key, 'hunter2') }] }),
    ]);
    expect(ids.size).toBe(4);
    expect(runId(withSecret('hunter2'))).toBe(runId(withSecret('hunter2')));
  });

  it('refuses a raw value where a digest belongs', () => {
    expect(() => runId({ ...appendStep, secrets: [{ target: '/t', digest: 'hunter2' }] })).toThrow(TypeError);
  });

  it('prints a Windows-style user as ((name X))', () => {
    const input: RunInput = { ...appendStep, user: { kind: 'windows', name: 'ContainerAdministrator' } };
    expect(toMachine(runHashInput(input))).toContain('(user((name ContainerAdministrator)))');
    expect(runId(input)).not.toBe(runId(appendStep));
    expect(toMachine(runHashInput({ ...appendStep, user: { kind: 'unix', uid: 1, gid: 2 } }))).toContain('(user((uid 1)(gid 2)))');
  });

  it('depends on env order, since the context keeps newest bindings first', () => {
    const a: RunInput = {
      ...appendStep,
      env: [
        ['A', '1'],
        ['B', '2'],
      ],
    };
    const b: RunInput = {
      ...appendStep,
      env: [
        ['B', '2'],
        ['A', '1'],
      ],
    };
    expect(toMachine(runHashInput(a))).toContain('(env((A 1)(B 2)))');
    expect(runId(a)).not.toBe(runId(b));
  });

  it('includes network names, workdir, shell and base', () => {
    expect(toMachine(runHashInput({ ...appendStep, network: ['host'] }))).toContain('(network(host))');
    const variants: RunInput[] = [
      { ...appendStep, network: ['host'] },
      { ...appendStep, workdir: '/src' },
      { ...appendStep, shell: ['/bin/sh', '-c'] },
      { ...appendStep, base: baseId('other') },
      { ...appendStep, cmd: 'Append ' },
    ];
    expect(new Set([runId(appendStep), ...variants.map(runId)]).size).toBe(variants.length + 1);
  });

  it('quotes atoms the way sexplib does', () => {
    const input: RunInput = { ...appendStep, cmd: 'echo "hi there"', env: [['E', '']] };
    expect(toMachine(runHashInput(input))).toContain('(env((E"")))(cmd"echo \\"hi there\\"")');
  });
});

describe('secretDigest', () => {
  it('is an HMAC-SHA256 with a prefix, deterministic, and keyed', () => {
    const d = secretDigest('k1', 'password');
    expect(d).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(d).toBe(secretDigest('k1', 'password'));
    expect(d).toBe(secretDigest(new TextEncoder().encode('k1'), new TextEncoder().encode('password')));
    expect(d).not.toBe(secretDigest('k2', 'password'));
    expect(d).not.toBe(secretDigest('k1', 'passwore'));
  });

  it('never contains the value or its plain hash', () => {
    // Values with non-hex characters: a hex digest could contain a short hex value by chance.
    for (const value of ['password', 'hunter2', 'correct horse battery staple', 'sk_live_xyz']) {
      const d = secretDigest('key', value);
      expect(d).not.toContain(value);
      expect(d).not.toContain(sha256Hex(value));
    }
  });
});

describe('manifest S-expressions', () => {
  const h = sha256Hex('x');
  it('has OBuilder constructor names and tuple nesting', () => {
    const m: Manifest = {
      kind: 'dir',
      path: '',
      children: [
        { kind: 'file', path: 'f', sha256: h },
        { kind: 'symlink', path: 'l', target: 'some target' },
        { kind: 'dir', path: 'd', children: [] },
      ],
    };
    expect(toMachine(sexpOfManifest(m))).toBe(`(Dir(""((File(f ${h}))(Symlink(l"some target"))(Dir(d())))))`);
  });
});

describe('manifests printed straight to machine form', () => {
  const h = sha256Hex('x');
  // Atoms that are bare, quoted (blank, empty, quote, parenthesis, comment marks, non-ASCII,
  // control) next to bare and quoted ones, at several depths.
  const names = ['f', 'a b', '', 'q"x', 'p(1)', 'semi;colon', '#|', 'é', 'tab\there', 'back\\slash', 'plain-name.txt'];
  const tree = (depth: number, prefix: string): Manifest => ({
    kind: 'dir',
    path: prefix,
    children: [
      ...names.map((n): Manifest => ({ kind: 'file', path: `${prefix}/${n}`, sha256: h })),
      ...names.map((n): Manifest => ({ kind: 'symlink', path: n, target: `${n}/target ${depth}` })),
      { kind: 'symlink', path: 'bare', target: 'bare-target' },
      { kind: 'dir', path: 'empty dir', children: [] },
      { kind: 'dir', path: 'empty', children: [] },
      ...(depth > 0 ? [tree(depth - 1, `${prefix}/sub ${depth}`), tree(depth - 1, `${prefix}/sub${depth}`)] : []),
    ],
  });
  const manifests: Manifest[] = [
    tree(3, ''),
    tree(2, 'plain'),
    { kind: 'file', path: 'a.txt', sha256: h },
    { kind: 'file', path: 'a b.txt', sha256: h },
    { kind: 'symlink', path: 'l', target: '' },
    { kind: 'dir', path: '', children: [] },
  ];

  it('prints what toMachine prints of the S-expression', () => {
    for (const m of manifests) expect(manifestMachine(m)).toBe(toMachine(sexpOfManifest(m)));
  });

  it('gives a copy the key of its S-expression, for one item or several, any destination and user', () => {
    const users = [ROOT, { kind: 'unix', uid: 1000, gid: 1000 } as const, { kind: 'windows', name: 'Container User' } as const];
    for (const user of users)
      for (const dst of ['/app/', '/app/x', 'rel dir/', 'q"/', '', '/a b'])
        for (const items of [manifests.slice(0, 1), manifests.slice(2, 3), manifests]) {
          const input: CopyInput = { base: BASE, user, items, dst };
          let expected: unknown;
          try {
            expected = stepKey(copyHashInput(input));
          } catch (e) {
            expected = e;
          }
          if (expected instanceof Error) expect(() => copyStepKeyOf(input)).toThrow(expected.message);
          else expect(copyStepKeyOf(input)).toEqual(expected);
        }
    expect(() => copyStepKeyOf({ base: BASE, user: ROOT, items: [], dst: '/app/' })).toThrow(CopyError);
  });
});

describe('copy IDs', () => {
  const file: Manifest = { kind: 'file', path: 'a.txt', sha256: sha256Hex('hello\n') };
  const other: Manifest = { kind: 'file', path: 'b.txt', sha256: sha256Hex('b\n') };

  it('copies one item as dst when dst has no trailing slash', () => {
    const literal =
      `((base ${BASE})(user((uid 0)(gid 0)))` + '(op(Copy_item((File(a.txt 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03))/app/a.txt))))';
    const input = { base: BASE, user: ROOT, items: [file], dst: '/app/a.txt' };
    expect(toMachine(copyHashInput(input))).toBe(literal);
    expect(copyId(input)).toBe(createHash('sha256').update(literal).digest('hex'));
  });

  it('copies into dst when it ends with /, even for a single item', () => {
    const one = toMachine(copyHashInput({ base: BASE, user: ROOT, items: [file], dst: '/app/' }));
    expect(one).toContain(`(op(Copy_items(((File(a.txt ${file.sha256})))/app/)))`);
    const two = toMachine(copyHashInput({ base: BASE, user: ROOT, items: [file, other], dst: '/app/' }));
    expect(two).toContain(`(op(Copy_items(((File(a.txt ${file.sha256}))(File(b.txt ${other.sha256})))/app/)))`);
  });

  it('keeps dst as written, so /app/ and /app// differ', () => {
    const a = copyId({ base: BASE, user: ROOT, items: [file], dst: '/app/' });
    const b = copyId({ base: BASE, user: ROOT, items: [file], dst: '/app//' });
    expect(a).not.toBe(b);
  });

  it('depends on the user and the base', () => {
    const input = { base: BASE, user: ROOT, items: [file], dst: '/app/' };
    const ids = new Set([copyId(input), copyId({ ...input, user: { kind: 'unix', uid: 1000, gid: 1000 } }), copyId({ ...input, base: baseId('other') })]);
    expect(ids.size).toBe(3);
  });

  it('rejects several items without a trailing slash, naming dst', () => {
    const input = { base: BASE, user: ROOT, items: [file, other], dst: '/app/target' };
    expect(() => copyId(input)).toThrow(CopyError);
    expect(() => copyId(input)).toThrow(/several items.*ending with '\/'.*"\/app\/target"/);
  });

  it('rejects a copy with no sources, naming dst', () => {
    expect(() => copyId({ base: BASE, user: ROOT, items: [], dst: '/app/' })).toThrow(new CopyError('no source items for copy to "/app/"', '/app/'));
    expect(() => copyId({ base: BASE, user: ROOT, items: [], dst: '' })).toThrow(CopyError);
  });
});
