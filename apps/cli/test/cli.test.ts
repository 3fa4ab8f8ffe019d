import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/main.js';

const REPO = join(import.meta.dirname, '../../..');
// The repository's own example specs (examples/specs/README.md says what each covers).
const EXAMPLES = join(REPO, 'examples/specs');

/** Runs `cairn ARGS` in-process and captures what it prints. */
async function cairn(args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => void (out += s), err: (s) => void (err += s), readStdin: async () => stdin });
  return { code, out, err };
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'cairn-cli-'));
}

describe('cairn fmt', () => {
  it('prints the canonical form', async () => {
    const r = await cairn(['fmt', '-'], '((from base)   (run (shell   "a command")))');
    expect(r).toEqual({ code: 0, out: '((from base)\n (run (shell "a command"))\n)\n', err: '' });
  });

  it('--check exits 1 on a non-canonical file and 0 on a canonical one', async () => {
    const dir = await tempDir();
    const ugly = join(dir, 'ugly.spec');
    await writeFile(ugly, '((from base) (run (shell x)))');
    const bad = await cairn(['fmt', '--check', ugly]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(`${ugly} is not in canonical form`);
    expect(bad.out).toBe('');
    expect(await cairn(['fmt', '--write', ugly])).toMatchObject({ code: 0, out: '' });
    expect(await readFile(ugly, 'utf8')).toBe('((from base)\n (run (shell x))\n)\n');
    expect((await cairn(['fmt', '--check', ugly])).code).toBe(0);
    expect(JSON.parse((await cairn(['fmt', '--check', '--json', ugly])).out)).toEqual({ file: ugly, canonical: true });
  });

  it('reports a bad spec with file, line and column, exit 1', async () => {
    const dir = await tempDir();
    const file = join(dir, 'bad.spec');
    await writeFile(file, '((from base)\n (rnu (shell x)))\n');
    const r = await cairn(['fmt', file]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`cairn: ${file}:2:3: unknown op "rnu" in (rnu (shell x)); did you mean "run"?\n`);
    const json = await cairn(['fmt', '--json', file]);
    expect(JSON.parse(json.err)).toMatchObject({ error: { line: 2, column: 3, file } });
  });

  it('names a missing file', async () => {
    const r = await cairn(['fmt', '/nonexistent/x.spec']);
    expect(r).toMatchObject({ code: 1, err: 'cairn: cannot read spec "/nonexistent/x.spec": no such file\n' });
  });
});

describe('cairn dockerfile', () => {
  it('converts the multi-stage example with BuildKit mounts', async () => {
    const r = await cairn(['dockerfile', '-f', join(EXAMPLES, 'cairn.spec'), '--buildkit']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('FROM node:24-bookworm as compile\n');
    expect(r.out).toContain(
      'RUN --mount=type=secret,id=npmrc,target=/home/node/.npmrc,uid=1000 --mount=type=cache,id=npm-cache,target=/home/node/.npm,uid=1000 npm ci --no-audit --no-fund\n',
    );
    expect(r.out).toContain(
      'RUN --mount=type=cache,id=nx-cache,target=/home/node/cairn/.nx/cache,uid=1000 npx nx run-many -t build && node apps/cli/bin/cairn.js --version && npm prune --omit=dev\n',
    );
    expect(r.out).toContain('\nFROM node:24-bookworm-slim\n');
    expect(r.out).toContain(
      'COPY --from=compile /home/node/cairn/package.json /home/node/cairn/node_modules /home/node/cairn/apps /home/node/cairn/libs /opt/cairn/\n',
    );
  });

  it('uses the Windows escape when asked', async () => {
    const r = await cairn(['dockerfile', '-f', '-', '--escape', 'windows'], '((from w) (run (shell "a\nb")))');
    expect(r.out).toBe('#escape=`\nFROM w\nRUN a `\n    b\n');
  });

  it('rejects an unknown escape style as a usage error (exit 2)', async () => {
    const r = await cairn(['dockerfile', '-f', '-', '--escape', 'dos']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/Allowed choices are unix, windows/);
  });
});

describe('cairn plan', () => {
  const VECTOR = 'a16a57b254ca5fe6ca5f34ab5ed0e56d9f38e13c62f7de9d876addd2061f678e';

  it('prints every step with its ID, base image first', async () => {
    const r = await cairn(['plan', '-f', '-', '--image-env', 'PATH=/usr/bin:/usr/local/bin'], '((from base) (comment hi) (run (shell Append)))');
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      [
        '(from base)',
        '    ---> cae662172fd450bb0cd710a769079c05bfc5d8e35efa6576edc7d0377afdd4a2',
        '/: (comment hi)',
        '/: (run (shell Append))',
        `    ---> ${VECTOR}`,
        `result: ${VECTOR}`,
        '',
      ].join('\n'),
    );
  });

  it('--json gives the steps and hash inputs', async () => {
    const r = await cairn(['plan', '-f', '-', '--json', '--image-env', 'PATH=/usr/bin:/usr/local/bin'], '((from base) (run (shell Append)))');
    const plan = JSON.parse(r.out);
    expect(plan.result).toBe(VECTOR);
    expect(plan.steps[1].hashInput).toBe(
      '((base cae662172fd450bb0cd710a769079c05bfc5d8e35efa6576edc7d0377afdd4a2)(workdir /)(user((uid 0)(gid 0)))(env((PATH /usr/bin:/usr/local/bin)))(cmd Append)(shell(/usr/bin/env bash -c))(network())(mount_secrets()))',
    );
  });

  it('reads secrets from files, keyed, and never prints them', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'token'), 's3cr3t-value');
    process.env.CAIRN_SECRET_KEY = 'test-key';
    try {
      const r = await cairn(
        ['plan', '-f', '-', '--json', '--secret', `tok:${join(dir, 'token')}`],
        '((from b) (run (secrets (tok (target /run/t))) (shell x)))',
      );
      expect(r.code).toBe(0);
      expect(r.out).not.toContain('s3cr3t-value');
      expect(JSON.parse(r.out).steps[1].hashInput).toMatch(/\(mount_secrets\(\(\(value hmac-sha256:[0-9a-f]{64}\)\(target \/run\/t\)\)\)\)/);
      const missing = await cairn(['plan', '-f', '-'], '((from b) (run (secrets (tok (target /run/t))) (shell x)))');
      expect(missing.code).toBe(1);
      expect(missing.err).toContain('the build would fail at (run (secrets (tok (target /run/t))) (shell x)): no value supplied for secret "tok"');
    } finally {
      delete process.env.CAIRN_SECRET_KEY;
    }
  });

  it('--compare says which steps rebuild and why', async () => {
    const dir = await tempDir();
    const ctx = join(dir, 'ctx');
    await import('node:fs/promises').then((fs) => fs.mkdir(ctx));
    await writeFile(join(ctx, 'main.c'), 'int main(){}\n');
    const spec = join(dir, 'build.spec');
    await writeFile(spec, '((from base) (run (shell deps)) (copy (src main.c) (dst /src/)) (run (shell build)))');
    const before = await cairn(['plan', '-f', spec, ctx, '--json']);
    await writeFile(join(dir, 'before.json'), before.out);
    await writeFile(join(ctx, 'main.c'), 'int main(){return 1;}\n');
    const r = await cairn(['plan', '-f', spec, ctx, '--compare', join(dir, 'before.json')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/\(run \(shell deps\)\)\n {4}---> [0-9a-f]{64} {2}\(unchanged, cached\)/);
    expect(r.out).toMatch(/\(copy \(src main\.c\) \(dst \/src\/\)\)\n {4}---> [0-9a-f]{64} {2}\(rebuilds: changed: main\.c\)/);
    expect(r.out).toMatch(/\(run \(shell build\)\)\n {4}---> [0-9a-f]{64} {2}\(rebuilds: an earlier step changed\)/);
    expect(r.out).toContain('2 of 4 snapshot steps would rebuild');
  });

  it('plans every example spec without error', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'npmrc'), '//registry.example.org/:_authToken=not-a-real-token\n');
    const extra: Record<string, string[]> = {
      'cairn.spec': ['--secret', `npmrc:${join(dir, 'npmrc')}`],
      'hello.macos.spec': [join(REPO, 'examples/hello')],
    };
    const files = ['cairn.spec', 'ci-go.linux.spec', 'hello.macos.spec', 'launcher.windows.spec', 'package.windows.hcs.spec'];
    expect(files.sort()).toEqual(
      readdirSync(EXAMPLES)
        .filter((f) => f.endsWith('.spec'))
        .sort(),
    );
    process.env.CAIRN_SECRET_KEY = 'test-key';
    try {
      for (const f of files) {
        const r = await cairn(['plan', '-f', join(EXAMPLES, f), '--json', ...(extra[f] ?? []), ...(f.includes('windows') ? ['--os', 'windows'] : [])]);
        expect(r.code, `${f}: ${r.err}`).toBe(0);
        const plan = JSON.parse(r.out);
        expect(plan.steps[0].kind).toBe('base');
        // With its context (examples/hello), every step of the macOS spec has its ID.
        if (f === 'hello.macos.spec') expect(plan.result).toMatch(/^[0-9a-f]{64}$/);
      }
    } finally {
      delete process.env.CAIRN_SECRET_KEY;
    }
  });
});

describe('usage', () => {
  it('--help teaches with examples and exits 0', async () => {
    const r = await cairn(['plan', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('Examples:');
    expect(r.out).toContain('--compare <plan.json>');
  });

  it('an unknown command or option is a usage error (exit 2) with a suggestion', async () => {
    const r = await cairn(['plna']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('(Did you mean plan?)');
    expect((await cairn(['fmt', '--wrte', 'x'])).code).toBe(2);
    expect((await cairn(['dockerfile'])).code).toBe(2);
  });

  it('a malformed --store, --fetcher or --sandbox is a usage error (exit 2) naming the flag; the same value from CAIRN_STORE is exit 1 naming the variable', async () => {
    for (const args of [
      ['df', '--store', 'nonsense'],
      ['df', '--store', 'btrfs:relative/path'],
      ['build', '-f', '-', '--store', 'btrfs:/tmp/x', '--sandbox', 'vm'],
      ['build', '-f', '-', '--store', 'btrfs:/tmp/x', '--fetcher', 'ftp'],
    ]) {
      const r = await cairn(args, '((from busybox))');
      const flag = args[args.length - 2]!;
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err, args.join(' ')).toContain(`cairn: ${flag}: `);
    }
    const saved = process.env.CAIRN_STORE;
    process.env.CAIRN_STORE = 'nonsense';
    try {
      const r = await cairn(['df']);
      expect(r.code).toBe(1);
      expect(r.err).toContain('(from CAIRN_STORE)');
    } finally {
      if (saved === undefined) delete process.env.CAIRN_STORE;
      else process.env.CAIRN_STORE = saved;
    }
  });

  it('a malformed cairn up --cache-domain is a usage error (exit 2), before anything starts', async () => {
    for (const [value, message] of [
      ['team', '"team" is not DOMAIN=CLIENT'],
      ['a=ci b=ci', 'client "ci" is in two domains'],
    ]) {
      const r = await cairn(['up', '--data', '/nonexistent/cairn-up', '--cache-domain', value!]);
      expect(r.code, value).toBe(2);
      expect(r.err, value).toContain(`cairn: --cache-domain: ${message}`);
    }
  });

  it('runs as `npx cairn` from the repository root, with meaningful exit codes', () => {
    const npx = (args: string[], input = '') => spawnSync('npx', ['cairn', ...args], { cwd: REPO, input, encoding: 'utf8' });
    const ok = npx(['fmt', '-'], '((from base)(run (shell x)))');
    expect([ok.status, ok.stdout]).toEqual([0, '((from base)\n (run (shell x))\n)\n']);
    const bad = npx(['fmt', '-'], '((from base)(rn (shell x)))');
    expect(bad.status).toBe(1);
    // npx may add its own warnings above; our message is the last line.
    expect(bad.stderr.endsWith('cairn: <stdin>:1:14: unknown op "rn" in (rn (shell x)); did you mean "run"?\n')).toBe(true);
    expect(npx(['--bogus']).status).toBe(2);
    expect(npx(['--help']).stdout).toContain('Usage: cairn [options] [command]');
  });
});

describe('cairn import', () => {
  const FIXTURES = join(REPO, 'libs/spec/test/fixtures/dockerfiles');

  it.each(['apt-cache-mounts', 'args', 'continuations', 'env-user-workdir-shell', 'multistage-go-c', 'npm-secrets'])(
    'import then dockerfile round-trips %s.Dockerfile',
    async (name) => {
      const dir = await tempDir();
      const imported = await cairn(['import', '-f', join(FIXTURES, `${name}.Dockerfile`)]);
      expect(imported.code, imported.err).toBe(0);
      await writeFile(join(dir, 'a.spec'), imported.out);
      const exported = await cairn(['dockerfile', '-f', join(dir, 'a.spec'), '--buildkit']);
      expect(exported.code, exported.err).toBe(0);
      await writeFile(join(dir, 'Dockerfile'), exported.out);
      const reimported = await cairn(['import', '-f', join(dir, 'Dockerfile')]);
      expect(reimported.out).toBe(imported.out);
      expect((await cairn(['fmt', '--check', join(dir, 'a.spec')])).code).toBe(0);
    },
  );

  it('turns .dockerignore into excludes when given the context', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, '.dockerignore'), 'node_modules\n.git\n');
    await writeFile(join(dir, 'Dockerfile'), 'FROM node:20\nCOPY . /app/\n');
    const r = await cairn(['import', '-f', join(dir, 'Dockerfile'), '--context', dir]);
    expect(r.out).toContain('(copy (src .) (dst /app/) (exclude node_modules .git))');
  });

  it('names the line of an instruction it cannot express', async () => {
    const r = await cairn(['import', '-f', '-', '--strict'], 'FROM a\nRUN x\nEXPOSE 80\n');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^cairn: <stdin>:3:1: EXPOSE/);
  });
});
