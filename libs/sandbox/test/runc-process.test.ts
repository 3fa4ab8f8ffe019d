import { describe, expect, it } from 'vitest';
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CommandNotFoundError, StepFailedError } from '../src/index.js';
import { RUNTIMES, scratch, stepConfig, USER } from './harness.js';

describe.each(RUNTIMES)('%s: the step process', (runtime) => {
  it('streams output while the command runs', async () => {
    const s = await scratch(runtime);
    const arrivals: { text: string; at: number }[] = [];
    await s.sandbox.run(stepConfig('echo first; sleep 1; echo second'), s.rootfs, {
      onOutput: (c) => arrivals.push({ text: Buffer.from(c).toString(), at: Date.now() }),
    });
    const done = Date.now();
    expect(arrivals.map((a) => a.text).join('')).toBe('first\nsecond\n');
    expect(done - arrivals[0]!.at).toBeGreaterThan(700);
  });

  it('interleaves stdout and stderr in one log, each in order', async () => {
    const s = await scratch(runtime);
    const lines = (await s.run('for i in $(seq 50); do echo out$i; echo err$i >&2; done')).split('\n').filter(Boolean);
    const expected = (stream: string) => Array.from({ length: 50 }, (_, i) => `${stream}${i + 1}`);
    expect(lines.filter((l) => l.startsWith('out'))).toEqual(expected('out'));
    expect(lines.filter((l) => l.startsWith('err'))).toEqual(expected('err'));
    expect(lines).toHaveLength(100);
  });

  it('rejects with the exit code, after streaming what came before', async () => {
    const s = await scratch(runtime);
    const { output, error } = await s.attempt('echo before; exit 3');
    expect(output).toBe('before\n');
    expect(error).toBeInstanceOf(StepFailedError);
    expect((error as StepFailedError).exitCode).toBe(3);
  });

  it('fails a command that cannot start and says why', async () => {
    const s = await scratch(runtime);
    const { output, error } = await s.attempt('', { argv: ['/no/such/program'] });
    expect(error).toBeInstanceOf(CommandNotFoundError);
    expect((error as Error).message).toMatch(/^not found: \/no\/such\/program/);
    expect(output).toContain('/no/such/program');
  });

  it('says "not found" for a missing shell, looked up inside the rootfs (an absolute link does not reach the host), along PATH for a bare name', async () => {
    const s = await scratch(runtime);
    // /usr/bin/zsh exists on the host (tools/setup.sh installs it), not in the rootfs.
    await symlink('/usr/bin/zsh', join(s.rootfs, 'bin', 'zsh'));
    for (const argv of [['/bin/zsh', '-c', 'true'], ['zsh', '-c', 'true'], ['/bin/../../../usr/bin/zsh']]) {
      const { error } = await s.attempt('', { argv });
      expect(error, argv.join(' ')).toBeInstanceOf(CommandNotFoundError);
      expect((error as Error).message, argv.join(' ')).toContain(`not found: ${argv[0]}`);
    }
    // Found (through a relative link, along PATH) and failing: its exit code, as before.
    for (const argv of [
      ['sh', '-c', 'exit 1'],
      ['/bin/sh', '-c', 'exit 1'],
    ]) {
      const { error } = await s.attempt('', { argv });
      expect(error, argv.join(' ')).not.toBeInstanceOf(CommandNotFoundError);
      expect((error as StepFailedError).exitCode).toBe(1);
    }
  });

  it('feeds stdin bytes, then EOF', async () => {
    const s = await scratch(runtime);
    expect(await s.run('cat; echo "<eof>"', {}, { stdin: Buffer.from('some input\n') })).toBe('some input\n<eof>\n');
  });

  it('feeds a stream to stdin with back-pressure', async () => {
    const s = await scratch(runtime);
    async function* megabytes() {
      for (let i = 0; i < 16; i++) yield new Uint8Array(1 << 20).fill(97 + i);
    }
    expect(await s.run('wc -c', {}, { stdin: megabytes() })).toMatch(/^\s*16777216\n$/);
  });

  it('has stdin at EOF when there is none', async () => {
    const s = await scratch(runtime);
    expect(await s.run('cat; echo done')).toBe('done\n');
  });

  it('succeeds when the command does not read its stdin', async () => {
    const s = await scratch(runtime);
    expect(await s.run('echo ignored', {}, { stdin: new Uint8Array(8 << 20) })).toBe('ignored\n');
  });

  it('stops the step and rejects with the error of a stdin source that fails', async () => {
    const s = await scratch(runtime);
    async function* broken() {
      yield Buffer.from('partial');
      throw new Error('the context went away');
    }
    const { error } = await s.attempt('cat >/dev/null; sleep 1000', {}, { stdin: broken() });
    expect(error).toEqual(new Error('the context went away'));
    expect(await s.containers()).toEqual([]);
  });

  it('runs in the working directory, with the environment', async () => {
    const s = await scratch(runtime);
    const env: [string, string][] = [
      ['PATH', '/bin'],
      ['GREETING', 'hello world'],
      ['EQUATION', 'a=b'],
    ];
    expect(await s.run('pwd; echo "$GREETING"; echo "$EQUATION"', { cwd: '/tmp', env })).toBe('/tmp\nhello world\na=b\n');
  });

  it('runs as the step user', async () => {
    const s = await scratch(runtime);
    expect(await s.run('id -u; id -g; grep CapEff /proc/self/status', { user: USER })).toBe('1000\n1000\nCapEff:\t0000000000000000\n');
  });

  it('calls the host builder, and /etc/hosts knows the name', async () => {
    const s = await scratch(runtime);
    expect(await s.run('hostname; cat /etc/hosts; ping -c1 -W1 builder | head -n1')).toBe(
      'builder\n127.0.0.1 localhost builder\nPING builder (127.0.0.1): 56 data bytes\n',
    );
  });

  it('the hosts file is readable by any user', async () => {
    const s = await scratch(runtime);
    expect(await s.run('hostname; grep -c other /etc/hosts', { hostname: 'other', user: USER })).toBe('other\n1\n');
  });
});

// runc (without a terminal) gives the command a pipe per stream and relays them from
// two threads, so the order across streams is only approximate there; crun shares one.
describe('crun: the step process', () => {
  it('gives the command one pipe for stdout and stderr, so their order is exact', async () => {
    const s = await scratch('crun');
    expect(await s.run('for i in $(seq 50); do echo out$i; echo err$i >&2; done')).toBe(
      Array.from({ length: 50 }, (_, i) => `out${i + 1}\nerr${i + 1}\n`).join(''),
    );
  });
});
