import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxImage } from '../../../test/support/images.js';
import { main } from '../src/main.js';

const REPO = join(import.meta.dirname, '../../..');
const CLI = join(REPO, 'apps/cli/bin/cairn.js');
const ID = /^[0-9a-f]{64}$/;
const ESC = '\x1b';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `cairn build` and friends as separate processes, through a pipe or a pseudo-terminal. */
describe('cairn output modes (real processes on an overlayfs store)', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-cli-modes-'));
    await busyboxImage(join(dir, 'images'), 'cairn/busybox:latest');
    env = {
      ...process.env,
      CAIRN_STORE: `overlayfs:${join(dir, 'store')}`,
      CAIRN_FETCHER: `oci:${join(dir, 'images')}`,
      CAIRN_CONFIG: join(dir, 'cairn.json'),
      CAIRN_SECRET_KEY: 'k',
      CAIRN_COMPILE_CACHE: join(dir, 'compile-cache'),
      NO_COLOR: '',
      FORCE_COLOR: '',
      TERM: 'xterm-256color',
    };
    await writeFile(env.CAIRN_CONFIG!, JSON.stringify({ stateDir: join(dir, 'state') }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  let specs = 0;
  const spec = async (body: string) => {
    const path = join(dir, `s${specs++}.spec`);
    await writeFile(path, `((from cairn/busybox:latest) (shell /bin/sh -c) ${body})`);
    return path;
  };
  const run = (cmd: string, args: string[], extra: NodeJS.ProcessEnv = {}) =>
    new Promise<Run>((resolve) => {
      execFile(cmd, args, { env: { ...env, ...extra }, cwd: dir, maxBuffer: 64 << 20 }, (error, stdout, stderr) =>
        resolve({ status: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
      );
    });
  const cairn = (args: string[], extra: NodeJS.ProcessEnv = {}) => run('node', [CLI, ...args], extra);
  /** Through a pseudo-terminal (util-linux `script`), as a person at a terminal runs it. */
  const onTerminal = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    run(
      'script',
      [
        '-qefc',
        ['stty cols 100;', 'node', CLI, ...args]
          .map((a) => `'${a}'`)
          .join(' ')
          .replace(`'stty cols 100;'`, 'stty cols 100;'),
        '/dev/null',
      ],
      extra,
    );

  it('tty: a live view of the running step with its last lines, then a summary', async () => {
    const file = await spec(
      '(run (shell "for i in 1 2 3 4 5 6 7; do echo live-line-$i; sleep 0.15; done; printf \'10%%\\r50%%\\r100%%\\n\'")) (run (shell "echo second"))',
    );
    const r = await onTerminal(['build', '-f', file, dir]);
    expect(r.status, r.stdout).toBe(0);
    const out = r.stdout;
    expect(out).toContain(`${ESC}[?25l`); // cursor hidden while drawing
    expect(out).toContain(`${ESC}[?25h`); // and shown again
    expect(out).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏].*\[2\/3\] \/: \(run \(shell\s+"for i in/); // the running step
    expect(out).toMatch(/│ live-line-3/); // its last lines, as they come
    expect(out).toMatch(/\d+\.\d\ds/); // elapsed time
    expect(out).toMatch(/✓.*\[2\/3\] .*for i in/);
    expect(out).toMatch(/✓.*\[3\/3\] \/: \(run \(shell "echo second"\)\)/);
    expect(out).toMatch(/Built.*: \d steps run \(\d+\.\d\ds\), \d from cache, in \d+\.\d\ds/);
    expect(out).toMatch(/Got: "[0-9a-f]{64}"/);
    expect(out).toContain(`${ESC}[32m`); // colours on a terminal
    // The \r progress shows as its last state in the live view, never as three lines.
    expect(out).not.toMatch(/│ 10%\r?\n/);

    const again = await onTerminal(['build', '-f', file, dir]);
    expect(again.stdout).toMatch(/0 steps run \(0\.00s\), 3 from cache/);
  });

  it('tty: a failed step leaves its output on the screen and exits 1', async () => {
    const r = await onTerminal(['build', '-f', await spec('(run (shell "echo why-it-failed; exit 3"))'), dir]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/✗.*\[2\/2\]/);
    expect(r.stdout).toMatch(/│ why-it-failed/);
    expect(r.stdout).toContain('the command exited with code 3');
  });

  it('auto is the live view on a terminal and the plain log in a pipe', async () => {
    const file = await spec('(run (shell "echo auto-mode"))');
    const piped = await cairn(['build', '-f', file, dir]);
    expect(piped.stdout).toMatch(/\[2\/2\] \/: \(run \(shell "echo auto-mode"\)\)\nauto-mode\n---> saved as "[0-9a-f]{64}"/);
    expect(piped.stdout).not.toContain(ESC);
    const tty = await onTerminal(['build', '-f', file, dir]);
    expect(tty.stdout).toContain('✓');
  });

  it('plain on a terminal has colours; NO_COLOR and --no-color take them away', async () => {
    const file = await spec('(run (shell "echo colours"))');
    const coloured = await onTerminal(['build', '--progress', 'plain', '-f', file, dir]);
    expect(coloured.stdout).toContain(`${ESC}[1m[1/2]`);
    for (const [args, extra] of [
      [['--no-color'], {}],
      [[], { NO_COLOR: '1' }],
    ] as const) {
      const r = await onTerminal([...args, 'build', '--progress', 'plain', '-f', file, dir], extra);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('[2/2]');
      expect(r.stdout).not.toContain(ESC);
    }
  });

  it('json: one event per line that a script can follow', async () => {
    const file = await spec('(env A b) (run (shell "echo json-out")) (run (shell "echo two"))');
    const r = await cairn(['build', '--progress', 'json', '-f', file, dir]);
    expect(r.status, r.stderr).toBe(0);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const kinds = events.map((e) => e.event);
    expect(kinds[0]).toBe('step-started');
    expect(events[0]).toMatchObject({ index: 1, total: 3, op: '(from cairn/busybox:latest)', stage: '' });
    expect(events).toContainEqual(expect.objectContaining({ event: 'step-started', index: 0, op: '/: (env A b)' }));
    expect(events).toContainEqual({ event: 'log', stage: '', index: 2, data: 'json-out\n' });
    const finished = events.filter((e) => e.event === 'step-finished');
    expect(finished.map((e) => e.index)).toEqual([1, 2, 3]);
    expect(finished.map((e) => e.cached)).toEqual([true, false, false]);
    for (const f of finished) {
      expect(f.id).toMatch(ID);
      expect(typeof f.durationMs).toBe('number');
    }
    expect(events.at(-1)).toMatchObject({ event: 'result', id: finished.at(-1)!.id, stepsRun: 2, stepsCached: 1 });

    const failed = await cairn(['build', '--progress', 'json', '-f', await spec('(run (shell "exit 4"))'), dir]);
    expect(failed.status).toBe(1);
    expect(JSON.parse(failed.stdout.trim().split('\n').at(-1)!)).toMatchObject({ event: 'error', message: expect.stringContaining('exited with code 4') });
  });

  it("steps are the engine's, whatever the text looks like: a workdir with a space, output that prints headings", async () => {
    const file = await spec(`(run (shell "mkdir -p '/my dir'")) (workdir "/my dir") (run (shell "echo '(from evil)'; echo '/: (run (shell x))'"))`);
    const plain = await cairn(['build', '--progress', 'plain', '-f', file, dir]);
    expect(plain.status, plain.stderr).toBe(0);
    expect(plain.stdout.match(/^\[\d\/\d\] .*/gm)).toEqual([
      '[1/3] (from cairn/busybox:latest)',
      `[2/3] /: (run (shell "mkdir -p '/my dir'"))`,
      `[3/3] /my dir: (run (shell "echo '(from evil)'; echo '/: (run (shell x))'"))`,
    ]);
    // The step's output stays output, between its heading and its end.
    expect(plain.stdout).toMatch(/\[3\/3\] [^\n]*\n\(from evil\)\n\/: \(run \(shell x\)\)\n---> saved as "[0-9a-f]{64}" \(\d+\.\d\ds\)\nGot: /);
    const json = await cairn(['build', '--progress', 'json', '-f', file, dir]);
    const events = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.filter((e) => e.event === 'step-finished').map((e) => [e.index, e.cached])).toEqual([
      [1, true],
      [2, true],
      [3, true],
    ]);
    const third = events.filter((e) => e.event === 'log' && e.index === 3).map((e) => e.data);
    expect(third.join('')).toBe('(from evil)\n/: (run (shell x))\n');
  });

  it('-q prints only the result ID', async () => {
    const r = await cairn(['build', '-q', '-f', await spec('(run (shell "echo quiet-step"))'), dir]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    expect(r.stderr).toBe('');
  });

  it("step output's escape sequences other than colours are removed; --raw keeps them", async () => {
    const file = await spec(`(run (shell "printf '\\\\033]0;owned\\\\007\\\\033[2J\\\\033[31mred\\\\033[0m\\\\033[3Adone\\\\n'"))`);
    const r = await cairn(['build', '-f', file, dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${ESC}[31mred${ESC}[0mdone\n`);
    expect(r.stdout).not.toContain(`${ESC}]0;`);
    expect(r.stdout).not.toContain(`${ESC}[2J`);
    const raw = await cairn(['build', '--raw', '-f', file, dir]);
    expect(raw.stdout).toContain(`${ESC}]0;owned\x07${ESC}[2J${ESC}[31mred${ESC}[0m${ESC}[3Adone`);
  });

  it('a reader that goes away (| head -1) ends the command quietly', async () => {
    const file = await spec('(run (shell "seq 1 200000"))');
    const r = await run('bash', ['-c', `node ${CLI} build -f ${file} ${dir} | head -1; exit \${PIPESTATUS[0]}`]);
    expect(r.stdout).toBe('[1/2] (from cairn/busybox:latest)\n');
    expect(r.stderr).not.toMatch(/EPIPE|Error|at /);
    expect(r.status).toBe(0);
  });

  it('--version prints the package version, quickly from the launcher and the same from main', async () => {
    const { version } = JSON.parse(await readFile(join(REPO, 'apps/cli/package.json'), 'utf8')) as { version: string };
    expect((await cairn(['--version'])).stdout).toBe(`${version}\n`);
    let out = '';
    await main(['--version'], { out: (s) => void (out += s), err: () => undefined, readStdin: async () => '' });
    expect(out).toBe(`${version}\n`);
  });

  it('runs on Node.js 24 or later', async () => {
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(24);
    expect((await run('node', ['--version'])).stdout).toMatch(/^v(2[4-9]|[3-9]\d)\./);
  });
});

describe('cairn completion', () => {
  const script = async (shell: string) => {
    let out = '';
    const code = await main(['completion', shell], { out: (s) => void (out += s), err: () => undefined, readStdin: async () => '' });
    expect(code).toBe(0);
    return out;
  };
  const complete = (bashScript: string, words: string[]) =>
    new Promise<string[]>((resolve, reject) => {
      const line = words.map((w) => `'${w}'`).join(' ');
      execFile(
        'bash',
        ['-c', `${bashScript}\nCOMP_WORDS=(${line}); COMP_CWORD=${words.length - 1}; _cairn; printf '%s\\n' "\${COMPREPLY[@]}"`],
        (error, stdout) => (error ? reject(error) : resolve(stdout.split('\n').filter(Boolean))),
      );
    });

  it('bash completes commands, nested subcommands, options and their choices', async () => {
    const s = await script('bash');
    expect(await complete(s, ['cairn', 'bu'])).toEqual(['build']);
    expect(await complete(s, ['cairn', 'build', '--prog'])).toEqual(['--progress']);
    expect(await complete(s, ['cairn', 'build', '--progress', ''])).toEqual(['auto', 'tty', 'plain', 'json']);
    expect(await complete(s, ['cairn', 'admin', 'worker', 'dr'])).toEqual(['drain']);
    expect(await complete(s, ['cairn', 'completion', ''])).toEqual(expect.arrayContaining(['--help']));
  });

  it('zsh and fish scripts are valid for their shells and name every command', async () => {
    for (const shell of ['zsh', 'fish']) {
      const s = await script(shell);
      for (const command of ['build', 'plan', 'submit', 'admin', 'completion']) expect(s).toContain(command);
      const path = join(tmpdir(), `cairn-completion-${process.pid}.${shell}`);
      await writeFile(path, s);
      const r = await new Promise<Run>((resolve) =>
        execFile(shell, ['-n', path], (error, stdout, stderr) => resolve({ status: error ? 1 : 0, stdout, stderr })),
      );
      expect(r.status, r.stderr).toBe(0);
      if (shell === 'fish') {
        // fish answers a completion request from a script: the script really completes.
        const asked = await new Promise<string>((resolve, reject) =>
          execFile('fish', ['-c', `source ${path}; complete -C 'cairn admin worker d'; complete -C 'cairn build --progress '`], (error, stdout) =>
            error ? reject(error) : resolve(stdout),
          ),
        );
        expect(
          asked
            .split('\n')
            .map((l) => l.split('\t')[0])
            .filter(Boolean),
        ).toEqual(['drain', 'auto', 'json', 'plain', 'tty']);
      }
      await rm(path);
    }
  });

  it('an unknown shell is a usage error', async () => {
    expect(await main(['completion', 'tcsh'], { out: () => undefined, err: () => undefined, readStdin: async () => '' })).toBe(2);
  });
});

describe('help', () => {
  it('is wrapped once, to the terminal width: paragraphs, not the source line breaks', async () => {
    let out = '';
    const io = { out: (s: string) => void (out += s), err: () => undefined, readStdin: async () => '', stdout: { isTTY: true, columns: 120 } };
    await main(['build', '--help'], io);
    const description = out.split('\n\n')[1]!;
    const lines = description.split('\n');
    expect(lines.length).toBeGreaterThan(1);
    // Every line but the last is filled close to the width: no ragged short lines.
    for (const line of lines.slice(0, -1)) expect(line.length).toBeGreaterThan(100);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(120);
  });
});
